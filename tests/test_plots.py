"""The figures print what they print at a readable size when shown at the page's width."""
import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from xailib import plots  # noqa: E402


def _ranks(n_cols, n_methods=6):
    rows = [{"model": m, "column": f"metric {c}", "method": f"method {k}", "rank": k + 1, "low": max(1, k),
             "high": k + 2} for m in ("a", "b") for c in range(n_cols) for k in range(n_methods)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n_cols", [5, 18])
def test_rank_heat_map_text_is_readable_at_the_page_width(n_cols):
    """Chapter 10's 18 columns once printed their intervals about 5 px tall once the figure was
    scaled down to the page: every text is now at least 7 pt at a width of at most the page's,
    and the intervals are left out (said in the title) where a cell cannot hold them."""
    fig = plots.rank_heatmap(_ranks(n_cols), "x", title="t", columns="column")
    width = fig.get_size_inches()[0]
    assert width <= plots.PAGE_WIDTH
    texts = [t for ax in fig.axes for t in ax.texts]
    assert texts and min(t.get_fontsize() for t in texts) >= 7
    has_interval = any("[" in t.get_text() for t in texts)
    assert has_interval == (n_cols == 5)
    assert ("intervals are in the tables" in fig._suptitle.get_text()) == (n_cols == 18)
