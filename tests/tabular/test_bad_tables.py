"""Bad tables get messages that say what to do: missing values, text columns, one class, many classes, too few
rows, unknown target, files that are not CSV; a saved model holding a foreign type is refused."""
import numpy as np
import pandas as pd
import pytest

from compute.errors import BadInput
from compute.tabular_data import RawTable, parse_csv, read_table


def frame(n=100, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    df["y"] = (df.a > 0).astype(int)
    return df


def table(df, target="y", **kw):
    return read_table(RawTable(df, "test", target), target, **kw)


def test_missing_values_are_named_and_can_be_dropped():
    df = frame()
    df.loc[[3, 7], "b"] = np.nan
    with pytest.raises(BadInput, match=r"missing values in 1 column\(s\): b \(2\)"):
        table(df)
    t = table(df, drop_missing=True)
    assert t.dropped_rows == 2 and len(t.X) == 98


def test_text_columns_are_one_hot_or_refused():
    df = frame()
    df["site"] = np.where(df.index % 3 == 0, "north", "south")
    t = table(df)
    assert t.encoded == {"site": ["site=north", "site=south"]} and "site=north" in t.features
    df["patient_id"] = [f"p{i}" for i in range(len(df))]
    with pytest.raises(BadInput, match="'patient_id' is text with 100 distinct values"):
        table(df)


def test_targets_with_one_class_or_many_and_unknown_targets():
    df = frame()
    with pytest.raises(BadInput, match="single class"):
        table(df.assign(y=1))
    with pytest.raises(BadInput, match="has 3 classes"):
        table(df.assign(y=df.index % 3))
    with pytest.raises(BadInput, match="no column 'nope'"):
        table(df, target="nope")
    with pytest.raises(BadInput, match="positive class 'maybe'"):
        table(df, positive="maybe")


def test_too_few_rows_and_a_rare_class():
    with pytest.raises(BadInput, match="too few rows: 20"):
        table(frame(20))
    df = frame()
    df["y"] = 0
    df.loc[:4, "y"] = 1
    with pytest.raises(BadInput, match="only 5 rows of class '1'"):
        table(df)


def test_files_that_are_not_csv():
    with pytest.raises(BadInput, match="empty"):
        parse_csv(b"")
    with pytest.raises(BadInput, match="not UTF-8"):
        parse_csv("a,b\n\xff\xfe,1\n".encode("latin-1"))
    with pytest.raises(BadInput, match="binary"):
        parse_csv(b"a,b\x00\n1,2\n")
    with pytest.raises(BadInput, match="single column"):
        parse_csv(b"a\n1\n2\n")
    assert list(parse_csv(b"a;b;y\n1;2;0\n3;4;1\n").columns) == ["a", "b", "y"]  # separator sniffed


def test_unknown_uploads_and_datasets(wb):
    from analyses.tabular import TabularFitSpec

    with pytest.raises(BadInput, match="no uploaded CSV"):
        wb.run(TabularFitSpec(model="tabular:csv:0123456789abcdef0123"))
    with pytest.raises(Exception, match="unknown dataset 'iris'"):
        wb.run(TabularFitSpec(model="tabular:iris"))
    with pytest.raises(BadInput, match="run on a dataset"):
        TabularFitSpec(model="zoo-lm").validate()
    with pytest.raises(BadInput, match="unknown model"):
        TabularFitSpec(model="tabular:breast-cancer", models=("xgboost", "catboost")).validate()


class Payload:
    """A class skops does not know: loading it would run this module's code."""


def test_a_saved_model_of_a_foreign_type_is_refused(tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from tabular.models import load

    sio.dump(Payload(), tmp_path / "svm.skops")
    with pytest.raises(BadInput, match="types this workbench does not load: tests.tabular.test_bad_tables.Payload"):
        load("svm", tmp_path)
    sio.dump(FunctionTransformer(np.exp), tmp_path / "random_forest.skops")
    with pytest.raises(BadInput, match="is a FunctionTransformer, not a saved random_forest model"):
        load("random_forest", tmp_path)
