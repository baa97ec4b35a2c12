//! Values in and out of SQL: [`ToSql`] for parameters, [`Row`] for one result
//! row, [`FromSql`] for one column and [`FromRow`] for a whole row.

use std::rc::Rc;

use crate::error::{ConversionError, Error, Result};

/// One SQLite value: `Null`, `Integer(i64)`, `Real(f64)`, `Text(String)` or
/// `Blob(Vec<u8>)`.
pub use crate::bindings::uplift::hooks::types::Value;

impl Value {
    /// The SQLite type name of this value, for messages: `NULL`, `INTEGER`,
    /// `REAL`, `TEXT` or `BLOB`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "INTEGER",
            Value::Real(_) => "REAL",
            Value::Text(_) => "TEXT",
            Value::Blob(_) => "BLOB",
        }
    }
}

/// A Rust value that can be bound as a statement parameter.
pub trait ToSql {
    /// The SQLite value this Rust value is stored as.
    fn to_value(&self) -> Value;
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl ToSql for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! integer_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_value(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )*};
}
integer_to_sql!(i8, i16, i32, i64, u8, u16, u32, bool);

impl ToSql for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToSql for f32 {
    fn to_value(&self) -> Value {
        Value::Real(f64::from(*self))
    }
}

impl ToSql for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToSql for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToSql for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToSql for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

/// A Rust value that can be read from one column of a result row.
///
/// Conversions are strict, as in rusqlite: an integer column reads into the
/// integer types (if it fits) and `f64`, text into `String`, a blob into
/// `Vec<u8>`; `NULL` only into `Option<T>` or [`Value`].
pub trait FromSql: Sized {
    /// Converts `value`; `Err` says what was expected instead.
    fn from_sql(value: &Value) -> std::result::Result<Self, &'static str>;
}

impl FromSql for Value {
    fn from_sql(value: &Value) -> std::result::Result<Self, &'static str> {
        Ok(value.clone())
    }
}

macro_rules! integer_from_sql {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_sql(value: &Value) -> std::result::Result<Self, &'static str> {
                match value {
                    Value::Integer(i) => <$t>::try_from(*i)
                        .map_err(|_| concat!("an integer that fits in ", stringify!($t))),
                    _ => Err(concat!("INTEGER (for ", stringify!($t), ")")),
                }
            }
        }
    )*};
}
integer_from_sql!(i8, i16, i32, i64, u8, u16, u32, u64, usize);

impl FromSql for bool {
    fn from_sql(value: &Value) -> std::result::Result<Self, &'static str> {
        match value {
            Value::Integer(i) => Ok(*i != 0),
            _ => Err("INTEGER (for bool)"),
        }
    }
}

impl FromSql for f64 {
    fn from_sql(value: &Value) -> std::result::Result<Self, &'static str> {
        match value {
            Value::Real(r) => Ok(*r),
            // SQLite stores whole REAL values as integers in some cases.
            Value::Integer(i) => Ok(*i as f64),
            _ => Err("REAL or INTEGER (for f64)"),
        }
    }
}

impl FromSql for String {
    fn from_sql(value: &Value) -> std::result::Result<Self, &'static str> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            _ => Err("TEXT (for String)"),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_sql(value: &Value) -> std::result::Result<Self, &'static str> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            _ => Err("BLOB (for Vec<u8>)"),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(value: &Value) -> std::result::Result<Self, &'static str> {
        match value {
            Value::Null => Ok(None),
            other => T::from_sql(other).map(Some),
        }
    }
}

/// One row of a query result: values with their column names.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Rc<[String]>,
    values: Vec<Value>,
}

/// Something that picks a column of a [`Row`]: its position (`0`, `1`, …)
/// or its name (`"username"`).
pub trait RowIndex {
    /// The position of the column in `row`, or `None` if there is none.
    fn index_in(&self, row: &Row) -> Option<usize>;
    /// How the column is named in error messages.
    fn describe(&self) -> String;
}

impl RowIndex for usize {
    fn index_in(&self, row: &Row) -> Option<usize> {
        (*self < row.values.len()).then_some(*self)
    }
    fn describe(&self) -> String {
        format!("column {self}")
    }
}

impl RowIndex for &str {
    fn index_in(&self, row: &Row) -> Option<usize> {
        row.columns.iter().position(|c| c == self).or_else(|| {
            row.columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(self))
        })
    }
    fn describe(&self) -> String {
        format!("column {self:?}")
    }
}

impl Row {
    /// A row from its column names and values (as the host returns them).
    pub fn new(columns: Rc<[String]>, values: Vec<Value>) -> Row {
        Row { columns, values }
    }

    /// Reads one column, by position or by name, into a Rust value.
    ///
    /// Fails when there is no such column or its value does not convert
    /// (for example `NULL` into `i64`: read an `Option<i64>`).
    pub fn get<T: FromSql>(&self, index: impl RowIndex) -> Result<T> {
        let Some(i) = index.index_in(self) else {
            return Err(Error::from(ConversionError {
                column: index.describe(),
                expected: "an existing column",
                found: format!("columns {:?}", self.columns),
            }));
        };
        let value = &self.values[i];
        T::from_sql(value).map_err(|expected| {
            Error::from(ConversionError {
                column: match self.columns.get(i) {
                    Some(name) => format!("column {name:?}"),
                    None => index.describe(),
                },
                expected,
                found: value.type_name().to_string(),
            })
        })
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, taken out of the row.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no column.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// A Rust value made from a whole row: tuples of [`FromSql`] values (read by
/// position), [`Row`] itself, or your own struct with
/// `#[derive(FromRow)]` (read by column name).
///
/// ```ignore
/// #[derive(FromRow)]
/// struct Learner { id: i64, username: String, email: Option<String> }
/// let learners: Vec<Learner> = ctx.db().query("SELECT id, username, email FROM learner", params![])?;
/// ```
pub trait FromRow: Sized {
    /// Builds the value; fails when a column is missing or does not convert.
    fn from_row(row: &Row) -> Result<Self>;
}

impl FromRow for Row {
    fn from_row(row: &Row) -> Result<Self> {
        Ok(row.clone())
    }
}

macro_rules! tuple_from_row {
    ($($n:literal $t:ident),+) => {
        impl<$($t: FromSql),+> FromRow for ($($t,)+) {
            fn from_row(row: &Row) -> Result<Self> {
                let expected = [$($n),+].len();
                if row.len() != expected {
                    return Err(Error::from(ConversionError {
                        column: "the row".to_string(),
                        expected: "as many columns as the tuple has elements",
                        found: format!("{} columns for a tuple of {expected}", row.len()),
                    }));
                }
                Ok(($(row.get::<$t>($n)?,)+))
            }
        }
    };
}
tuple_from_row!(0 A);
tuple_from_row!(0 A, 1 B);
tuple_from_row!(0 A, 1 B, 2 C);
tuple_from_row!(0 A, 1 B, 2 C, 3 D);
tuple_from_row!(0 A, 1 B, 2 C, 3 D, 4 E);
tuple_from_row!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F);
tuple_from_row!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G);
tuple_from_row!(0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H);

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: Vec<Value>) -> Row {
        let columns: Vec<String> = (0..values.len()).map(|i| format!("c{i}")).collect();
        Row::new(columns.into(), values)
    }

    #[test]
    fn reads_a_tuple_by_position() {
        let r = row(vec![
            Value::Integer(7),
            Value::Text("ada".into()),
            Value::Null,
        ]);
        let (id, name, email): (i64, String, Option<String>) = FromRow::from_row(&r).unwrap();
        assert_eq!((id, name.as_str(), email), (7, "ada", None));
    }

    #[test]
    fn reads_a_column_by_name_ignoring_case() {
        let r = row(vec![Value::Integer(1), Value::Real(2.5)]);
        assert_eq!(r.get::<f64>("C1").unwrap(), 2.5);
    }

    #[test]
    fn null_into_a_plain_integer_names_the_column_and_the_types() {
        let r = row(vec![Value::Null]);
        let err = r.get::<i64>(0).unwrap_err().to_string();
        assert!(
            err.contains("\"c0\"") && err.contains("NULL") && err.contains("INTEGER"),
            "{err}"
        );
    }

    #[test]
    fn a_tuple_of_the_wrong_width_is_an_error() {
        let r = row(vec![Value::Integer(1), Value::Integer(2)]);
        assert!(<(i64,)>::from_row(&r).is_err());
    }

    #[test]
    fn an_integer_too_big_for_the_target_is_an_error() {
        let r = row(vec![Value::Integer(300)]);
        assert!(r.get::<u8>(0).is_err());
        assert_eq!(r.get::<u16>(0).unwrap(), 300);
    }

    #[test]
    fn params_convert_rust_values() {
        let none: Option<i64> = None;
        let p = crate::params![1, "a", 2.5, none, Some("b".to_string()), vec![1u8, 2], true];
        assert_eq!(
            p,
            &[
                Value::Integer(1),
                Value::Text("a".into()),
                Value::Real(2.5),
                Value::Null,
                Value::Text("b".into()),
                Value::Blob(vec![1, 2]),
                Value::Integer(1),
            ]
        );
    }
}
