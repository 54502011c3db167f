"""The README's generated results section: built from the workflow's outputs and spliced between markers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adabert.errors import AdabertError
from adabert.report.readme import BEGIN, END, build_section, rebase_links, splice, update_readme, write_section

REPO = Path(__file__).resolve().parents[1]


def _outputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    main = tmp_path / "paper/tables/main.md"
    main.parent.mkdir(parents=True)
    main.write_text("# Main comparison: the paper vs this run\n\n| method | MRPC |\n|:--|:--|\n| x | 81.7 |\n\n- note\n")
    measurement = tmp_path / "m.json"
    measurement.write_text(json.dumps({"threads": 2, "machine": {"cpu_model": "AMD EPYC", "cores_available": 2,
                                                                 "cuda": None}, "versions": {"torch": "2.13.0"}}))
    return main, tmp_path / "paper/figures/speedup.png", measurement


def test_section_holds_the_table_the_figure_and_the_machine(tmp_path):
    main, figure, measurement = _outputs(tmp_path)
    section = build_section(main, figure, measurement, tmp_path)
    assert section.startswith(BEGIN) and section.endswith(END)
    assert "| x | 81.7 |" in section and "- note" in section and "# Main comparison: the paper" not in section
    assert "![Speedup over BERT-base per task and engine](paper/figures/speedup.png)" in section
    assert "AMD EPYC; 2 cores; no GPU; torch 2.13.0; 2 threads" in section
    # links are relative to the folder of the file the section is written to (paper/README_results.md)
    assert "](figures/speedup.png)" in build_section(main, figure, measurement, tmp_path / "paper")
    assert "against its targets" not in section


def test_section_shows_the_scorecard(tmp_path):
    main, figure, measurement = _outputs(tmp_path)
    card = tmp_path / "paper/tables/scorecard.md"
    card.write_text("# Targets of the default run, checked on this run\n\n| target | met |\n|:--|:--|\n| a | no |\n")
    section = build_section(main, figure, measurement, tmp_path / "paper", scorecard_md=card)
    assert "### This run against its targets" in section and "| a | no |" in section
    assert "[the scorecard](tables/scorecard.md)" in section and "# Targets of the default run" not in section
    card.write_text("not a table\n")
    with pytest.raises(AdabertError, match="scorecard rule"):
        build_section(main, figure, measurement, tmp_path, scorecard_md=card)


def test_section_shows_the_runs_cost(tmp_path):
    main, figure, measurement = _outputs(tmp_path)
    tables = tmp_path / "results/tables"
    tables.mkdir(parents=True)
    (tables / "cost.csv").write_text("stage,jobs,wall_s,mean_s,max_s,span_s,peak_rss_mb\n"
                                     "teacher,2,3000.4,1500,2000,2500,3000\nretrain,3,160,53,60,900,1000\n"
                                     "total,5,3160.4,632,2000,6600,3000\n")
    (tables / "cost_jobs.csv").write_text("stage,job,seconds,max_rss_mb\nteacher,CoLA,1000.4,1\nteacher,RTE,2000,1\n"
                                          "retrain,main/CoLA/seed0,40,1\nretrain,random/CoLA/seed0,60,1\n"
                                          "retrain,random/CoLA/seed1,60,1\n")
    section = build_section(main, figure, measurement, tmp_path / "paper", cost_csv=tables / "cost.csv")
    assert "### Cost of this run" in section
    assert ("5 jobs, 3,160 s of job time, spanning 6,600 s (110.0 min) of the clock "
            "(the cost table `cost.csv` and its per-job rows `cost_jobs.csv`, which `make readme` copies into "
            "docs/results): "
            "teacher 3,000 s (2 jobs); retrain 160 s (3 jobs): random 120 s (2), main 40 s (1).") in section
    (tables / "cost.csv").write_text("stage,jobs,wall_s,mean_s,max_s,span_s,peak_rss_mb\nteacher,2,1,1,1,1,1\n")
    with pytest.raises(AdabertError, match="no total row"):
        build_section(main, figure, measurement, tmp_path, cost_csv=tables / "cost.csv")


def test_relative_links_are_rebased_when_spliced(tmp_path, monkeypatch):
    main, figure, measurement = _outputs(tmp_path)
    monkeypatch.chdir(tmp_path)  # the workflow passes paths relative to the repository
    write_section(Path("paper/tables/main.md"), Path("paper/figures/speedup.png"), measurement,
                  Path("paper/README_results.md"))
    assert "](figures/speedup.png)" in (tmp_path / "paper/README_results.md").read_text()
    section = "[a](figures/x.png) [b](https://example.org/x) [c](#anchor) [d](../README.md)"
    assert rebase_links(section, Path("paper"), Path(".")) == \
        "[a](paper/figures/x.png) [b](https://example.org/x) [c](#anchor) [d](README.md)"


def test_splice_replaces_only_the_marked_block(tmp_path):
    main, figure, measurement = _outputs(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{BEGIN}\nold numbers\n{END}\n\nafter\n")
    write_section(main, figure, measurement, tmp_path / "paper" / "section.md")
    update_readme(readme, tmp_path / "paper" / "section.md")
    text = readme.read_text()
    assert "old numbers" not in text and "| x | 81.7 |" in text
    assert "](paper/figures/speedup.png)" in text
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    update_readme(readme, tmp_path / "paper" / "section.md")  # idempotent
    assert readme.read_text() == text
    with pytest.raises(AdabertError, match="markers are missing"):
        splice("no markers here", "x")


def test_the_project_readme_has_the_markers():
    text = (REPO / "README.md").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
