//! How values are spelled in CSV cells and in the protocol's JSON rows.
//!
//! Floats follow the legacy sampler's `f"{v:.3f}"` (Rust's `{:.3}` rounds the
//! same way, exactly, on the binary value), with `nan` for NaN, `inf` and
//! `-inf` as Python prints them, and no `-0.000`: a tiny negative noise value
//! is written as `0.000`. Integers are plain; flags are `0`/`1`.

use std::borrow::Cow;

use serde_json::Value;

/// One cell of a results or skipped row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    /// A function that is not part of the row's configuration.
    Empty,
    Text(String),
    Int(u64),
    Float(f64),
}

impl Cell {
    pub(crate) fn flag(value: bool) -> Cell {
        Cell::Int(u64::from(value))
    }

    /// The CSV text of the cell.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            Cell::Empty => Cow::Borrowed(""),
            Cell::Text(s) => Cow::Borrowed(s),
            Cell::Int(v) => Cow::Owned(v.to_string()),
            Cell::Float(v) => Cow::Owned(format_float(*v)),
        }
    }

    /// The JSON value lb's export receives: integers as numbers, floats as
    /// their formatted text (`"0.950"`, `"nan"`), empty cells as `""`.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Cell::Int(v) => Value::from(*v),
            other => Value::String(other.text().into_owned()),
        }
    }

    /// A cell from a JSON value of a protocol row, as lb hands rows back to
    /// `export`: text as it is (the rows [`Cell::to_json`] makes hold floats
    /// as text already), whole numbers plain, other numbers as floats
    /// (`%.3f`), `true`/`false` as the flags `1`/`0`, `null` empty. An array
    /// or object, which no row holds, is kept as its JSON text.
    pub(crate) fn from_json(value: &Value) -> Cell {
        match value {
            Value::Null => Cell::Empty,
            Value::Bool(flag) => Cell::flag(*flag),
            Value::String(text) => Cell::Text(text.clone()),
            Value::Number(number) => match (number.as_u64(), number.as_i64()) {
                (Some(whole), _) => Cell::Int(whole),
                (None, Some(negative)) => Cell::Text(negative.to_string()),
                _ => Cell::Float(number.as_f64().unwrap_or(f64::NAN)),
            },
            other => Cell::Text(other.to_string()),
        }
    }
}

/// `%.3f` as the legacy sampler writes it; see the module docs.
pub(crate) fn format_float(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_string();
    }
    let text = format!("{value:.3}");
    match text.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_string(),
        _ => text,
    }
}

/// Python's `repr(float)`: the shortest text that reads back as the same
/// value, in exponent form below 1e-4 and from 1e16 on (`1e-05`,
/// `1.5e+16`), `nan`, `inf`, `-inf`. Used where the legacy sampler wrote
/// raw floats (the per-iteration metrics CSV).
pub(crate) fn python_float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    // Rust's Debug form is the shortest round-trip text and switches to
    // exponent form at the same thresholds as Python; only the exponent is
    // spelled differently (`1e16` vs `1e+16`, `1e-5` vs `1e-05`).
    let debug = format!("{value:?}");
    let Some((mantissa, exponent)) = debug.split_once('e') else {
        return debug;
    };
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exponent),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_python_percent_3f() {
        // Expected values printed by CPython's f"{v:.3f}".
        let cases = [
            (0.95, "0.950"),
            (0.0625, "0.062"),
            (0.0015, "0.002"),
            (1.0005, "1.000"),
            (123456789.125, "123456789.125"),
            (1e16, "10000000000000000.000"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (-1.5, "-1.500"),
            (-0.0005, "-0.001"),
        ];
        for (v, want) in cases {
            assert_eq!(format_float(v), want, "{v:?}");
        }
    }

    #[test]
    fn no_negative_zero() {
        for v in [-0.0, -0.0004, -1e-300, -0.000_499_999] {
            assert_eq!(format_float(v), "0.000", "{v:?}");
        }
    }

    #[test]
    fn python_repr() {
        // Expected values printed by CPython's repr().
        let cases = [
            (12.0, "12.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (-2.5e-7, "-2.5e-07"),
            (123456789.125, "123456789.125"),
            (9999999999999998.0, "9999999999999998.0"),
            (-0.0, "-0.0"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (v, want) in cases {
            assert_eq!(python_float_repr(v), want, "{v:?}");
        }
    }

    #[test]
    fn cells_from_json() {
        let texts: Vec<String> = [
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(false),
            serde_json::json!(3),
            serde_json::json!(-3),
            serde_json::json!(0.1236),
            serde_json::json!(-0.0001),
            serde_json::json!(20.0),
            serde_json::json!("nan"),
            serde_json::json!("0.950"),
            serde_json::json!([1, 2]),
        ]
        .iter()
        .map(|v| Cell::from_json(v).text().into_owned())
        .collect();
        assert_eq!(
            texts,
            ["", "1", "0", "3", "-3", "0.124", "0.000", "20.000", "nan", "0.950", "[1,2]"]
        );
        for cell in [
            Cell::Int(7),
            Cell::Float(0.95),
            Cell::Empty,
            Cell::flag(true),
        ] {
            assert_eq!(
                Cell::from_json(&cell.to_json()).text(),
                cell.text(),
                "{cell:?}"
            );
        }
    }

    #[test]
    fn cells_to_json() {
        assert_eq!(Cell::Int(3).to_json(), serde_json::json!(3));
        assert_eq!(Cell::Float(0.95).to_json(), serde_json::json!("0.950"));
        assert_eq!(Cell::Float(f64::NAN).to_json(), serde_json::json!("nan"));
        assert_eq!(Cell::Empty.to_json(), serde_json::json!(""));
        assert_eq!(Cell::flag(true).to_json(), serde_json::json!(1));
        assert_eq!(Cell::Text("env".into()).to_json(), serde_json::json!("env"));
    }
}
