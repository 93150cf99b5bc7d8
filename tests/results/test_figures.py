"""What every drawing shares (mosaic/results/figures.py): the bands in the scale drawn, their floor, and the
plot formats named by a file's extension."""

import statistics

import pytest
from scipy import stats

from mosaic.errors import UsageError
from mosaic.results.figures import band, band_floor, band_scale, output_format


def t_interval(values):
    mean, half = statistics.fmean(values), stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values)
    return mean, mean - half / len(values) ** 0.5, mean + half / len(values) ** 0.5


def test_a_loss_band_stops_at_zero_on_the_linear_scale():
    losses = [0.0, 0.0, 0.0, 0.4]  # three replicates solved the task: no log scale, and the t interval reaches -0.2
    mean, low, high = t_interval(losses)
    assert low < 0
    assert band(losses, "linear") == pytest.approx((mean, low, high))  # no floor: the t interval as it is
    assert band(losses, "linear", band_floor(losses, "test_loss")) == pytest.approx((mean, 0.0, high))
    assert band([0.4], "linear", 0.0) == (0.4, None, None)
    # on the log scale the interval of the logarithms never reaches 0: a floor changes nothing
    assert band([1e-6, 1e-3, 1.0], "log", 0.0)[1] > 0


def test_the_floor_is_for_values_that_cannot_be_negative():
    assert band_floor([0.0, 0.5, None], "test_loss") == 0.0
    assert band_floor([0.1, 0.5], "overfit") == 0.0
    assert band_floor([-0.3, 0.5], "train_loss") is None  # a loss that goes negative (a likelihood) keeps its band
    assert band_floor([0.1, 0.5], "slope") is None  # positive here, but a slope may be negative
    assert band_floor([0.1, 0.5], "accuracy") is None


def test_a_band_is_computed_in_the_scale_its_axis_is_drawn_in():
    assert band_scale([1e-5, 0.01, 1.0], "linear") == "log"  # over two decades: a log axis, a band of the logs
    assert band_scale([0.2, 1.0], "linear") == "linear"
    assert band_scale([0.2, 1.0], "log") == "log"
    assert band_scale([0.0, 1e-5, 1.0], "linear") == "linear"  # a 0: no log axis


def test_output_format_is_the_extension():
    assert [output_format(name) for name in ("a.pdf", "b.PNG", "c/d.svg")] == ["pdf", "png", "svg"]
    assert output_format("runs.json", (".json",), "runs file") == "json"
    with pytest.raises(UsageError) as error:
        output_format("curves.txt")
    assert str(error.value) == "curves.txt: unknown plot format '.txt' (use .pdf, .png or .svg)"
    with pytest.raises(UsageError) as error:
        output_format("curves")
    assert str(error.value) == "curves: no extension to name the plot format (use .pdf, .png or .svg)"
    with pytest.raises(UsageError) as error:
        output_format("runs.txt", (".json",), "runs file")
    assert str(error.value) == "runs.txt: unknown runs file format '.txt' (use .json)"
