"""The comparison in plain words (mosaic.results.summary): what mosaic_compare prints first and mosaic_run
prints at its end. Its numbers are the tables' (the same p-value, centers and effect), on the db_path
fixture (fake_database.py) and on hand-made groups."""

from mosaic.results import compare_outputs as outputs
from mosaic.results.compare import compare, compare_dataset
from mosaic.results.groups import Group
from mosaic.results.summary import summary


def test_sentences_word_for_word(db_path, tmp_path):
    text = outputs.run_compare(db_path, str(tmp_path / "o"))
    lines = text.splitlines()
    assert lines[0] == "data_dataset_AND: test_loss, lower is better"
    assert lines[1] == ("  net_funnel width=4 vs net_brick width=4: test_loss 0.077 vs 0.064 (1.2× higher), not proven "
                        "at n = 4 (p = 0.22); 5 or more replicates each would settle it.")
    assert lines[3] == ("  net_brick width=4 beats width=2: test_loss 0.064 vs 0.11 (1.8× lower; won all 16 replicate "
                        "pairs; p = 0.014).")
    assert lines[4].split() == ["rank", "group", "test_loss", "(geometric", "mean)", "95%", "interval", "n"]
    assert lines[5].split() == ["1", "net_brick", "width=4", "0.064", "0.046", "to", "0.088", "4"]
    # a group with a single replicate left: its failures said, no interval
    assert "  6     net_funnel width=2  0.10" in text and "1 (2 failed or diverged)" in text
    assert "welch_p" not in text  # the tables only with detail=True
    assert (tmp_path / "o" / "summary.txt").read_text() == text


def test_the_sentences_use_the_tables_numbers(db_path):
    comparisons, ranks = compare(db_path)
    text = summary(comparisons, ranks)
    for comparison in comparisons:
        for row in comparison.comparisons:
            if row["family"] == "architectures":
                assert f"(p = {row['welch_p_holm']:.2g})" in text  # the Holm p the verdict uses, not Mann-Whitney's


def test_a_clear_winner_counts_the_pairs_it_won_and_the_higher_is_better_case():
    def group(key, values):
        return Group("data", key, values=values, run_ids=list(range(len(values))), nb_params={10})

    better, worse = group("mlp", [0.90, 0.91, 0.92]), group("linear", [0.50, 0.52, 0.51])
    comparison = compare_dataset([worse, better], "accuracy", higher=True)
    assert summary([comparison]).splitlines()[:2] == [
        "data: accuracy, higher is better",
        "  mlp beats linear: accuracy 0.91 vs 0.51 (0.40 higher; won all 9 replicate pairs; p = 1.0e-6).",
    ]
    close = compare_dataset([group("mlp", [0.90, 0.80, 0.85]), group("linear", [0.84, 0.86, 0.83])], "accuracy",
                            higher=True)
    assert summary([close]).splitlines()[1] == (
        "  linear vs mlp: accuracy 0.84 vs 0.85 (0.0067 lower), not proven at n = 3 (p = 0.84); 7 or more replicates"
        " each would settle it.")


def test_every_column_the_tables_print_is_explained_in_help():
    headers = {header for columns in (outputs.GROUP_TABLE, outputs.PAIR_TABLE, outputs.ROPE_TABLE)
               for _, header in columns}
    for header in headers:
        for name in header.format(center="gmean", effect="ratio").split("/"):
            assert name in outputs.COLUMN_HELP, name
    assert "mean" in outputs.COLUMN_HELP and "diff" in outputs.COLUMN_HELP
