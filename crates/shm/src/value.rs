//! Column types, values, rows, and how they are packed into row words.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::layout::{DATA_WORD, MAX_COLUMNS, NAME_WORDS};
use crate::{Error, Result};

/// Longest column name, in bytes.
pub const MAX_COLUMN_NAME: usize = NAME_WORDS * 8;
/// Largest declared size of a [`Column::Str`], in bytes (1 MiB).
pub const MAX_STR_LEN: usize = 1 << 20;

/// The type of a table column.
///
/// # Examples
///
/// ```
/// use rswoole_shm::Column;
/// assert_eq!(Column::Str(64).to_string(), "str(64)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// A signed 64-bit integer (`i64`); supports `incr`/`decr`.
    Int,
    /// A 64-bit float (`f64`, NaN and infinities included); supports
    /// `incr_float`.
    Float,
    /// A byte string of at most this many bytes (binary safe; need not be
    /// UTF-8). At most [`MAX_STR_LEN`].
    Str(usize),
}

impl Column {
    /// Words this column takes in a row buffer.
    pub(crate) fn words(self) -> usize {
        match self {
            Column::Int | Column::Float => 1,
            Column::Str(n) => 1 + n.div_ceil(8),
        }
    }

    pub(crate) fn code(self) -> (u32, u32) {
        match self {
            Column::Int => (1, 8),
            Column::Float => (2, 8),
            Column::Str(n) => (3, u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }

    pub(crate) fn from_code(kind: u32, size: u32) -> Option<Column> {
        match kind {
            1 => Some(Column::Int),
            2 => Some(Column::Float),
            3 => Some(Column::Str(size as usize)),
            _ => None,
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Int => f.write_str("int"),
            Column::Float => f.write_str("float"),
            Column::Str(n) => write!(f, "str({n})"),
        }
    }
}

/// One value of a row.
///
/// Build one with `From`: integers become [`Value::Int`], floats
/// [`Value::Float`], strings and byte slices [`Value::Str`].
///
/// # Examples
///
/// ```
/// use rswoole_shm::Value;
/// assert_eq!(Value::from(7), Value::Int(7));
/// assert_eq!(Value::from("hi").as_str(), Some("hi"));
/// assert_eq!(Value::from(0.5).as_float(), Some(0.5));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// For [`Column::Int`].
    Int(i64),
    /// For [`Column::Float`].
    Float(f64),
    /// For [`Column::Str`]: raw bytes (use [`Value::as_str`] for text).
    Str(Vec<u8>),
}

impl Value {
    /// The integer, if this is an `Int`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The float, if this is a `Float`.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// The bytes, if this is a `Str`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }

    /// The text, if this is a `Str` holding valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The value as JSON: numbers, or a string (invalid UTF-8 replaced by
    /// U+FFFD). NaN and infinities, which JSON cannot hold, become `null`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::Value;
    /// assert_eq!(Value::from(3).to_json(), 3);
    /// assert_eq!(Value::from("hi").to_json(), "hi");
    /// assert!(Value::from(f64::NAN).to_json().is_null());
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Int(v) => serde_json::Value::from(*v),
            Value::Float(v) => serde_json::Number::from_f64(*v)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(v) => serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(f64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v.into_bytes())
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Str(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Str(v)
    }
}

/// One column of a [`Schema`].
#[derive(Debug, Clone)]
pub(crate) struct ColumnInfo {
    pub(crate) name: String,
    pub(crate) column: Column,
    /// First word of the column in a row buffer.
    pub(crate) word: usize,
}

/// The columns of a table and where each lives in a row buffer.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub(crate) cols: Vec<ColumnInfo>,
    pub(crate) buf_words: usize,
}

impl Schema {
    pub(crate) fn new(cols: Vec<(String, Column)>) -> Result<Schema> {
        if cols.is_empty() {
            return Err(Error::schema("a table needs at least one column"));
        }
        if cols.len() > MAX_COLUMNS {
            return Err(Error::schema(format!(
                "{} columns; the maximum is {MAX_COLUMNS}",
                cols.len()
            )));
        }
        let mut out = Vec::with_capacity(cols.len());
        let mut word = DATA_WORD;
        for (name, column) in cols {
            if name.is_empty() || name.len() > MAX_COLUMN_NAME || name.contains('\0') {
                return Err(Error::schema(format!(
                    "column name `{name}` must be 1-{MAX_COLUMN_NAME} bytes without NUL"
                )));
            }
            if out.iter().any(|c: &ColumnInfo| c.name == name) {
                return Err(Error::schema(format!("duplicate column `{name}`")));
            }
            if let Column::Str(n) = column {
                if n == 0 || n > MAX_STR_LEN {
                    return Err(Error::schema(format!(
                        "column `{name}`: Str size must be 1..={MAX_STR_LEN}, not {n}"
                    )));
                }
            }
            out.push(ColumnInfo { name, column, word });
            word += column.words();
        }
        Ok(Schema {
            cols: out,
            buf_words: word,
        })
    }

    /// Index and info of the column called `name`.
    #[inline]
    pub(crate) fn find(&self, name: &str) -> Result<(usize, &ColumnInfo)> {
        self.cols
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
            .ok_or_else(|| Error::UnknownColumn {
                column: name.to_owned(),
            })
    }

    /// Human-readable column list, e.g. `name str(64), score int`.
    pub(crate) fn describe(&self) -> String {
        let cols: Vec<String> = self
            .cols
            .iter()
            .map(|c| format!("{} {}", c.name, c.column))
            .collect();
        cols.join(", ")
    }

    /// Checks that `value` fits column `idx` (an `Int` fits a `Float`
    /// column).
    pub(crate) fn check(&self, idx: usize, value: &Value) -> Result<()> {
        let c = &self.cols[idx];
        match (c.column, value) {
            (Column::Int, Value::Int(_)) => Ok(()),
            (Column::Float, Value::Float(_) | Value::Int(_)) => Ok(()),
            (Column::Str(max), Value::Str(s)) => {
                if s.len() > max {
                    Err(Error::StrTooLong {
                        column: c.name.clone(),
                        len: s.len(),
                        max,
                    })
                } else {
                    Ok(())
                }
            }
            (expected, _) => Err(Error::TypeMismatch {
                column: c.name.clone(),
                expected,
            }),
        }
    }

    /// Writes a checked `value` into column `idx` of `buf`.
    pub(crate) fn encode(&self, idx: usize, value: &Value, buf: &[AtomicU64]) {
        let c = &self.cols[idx];
        let w = c.word;
        match (c.column, value) {
            (Column::Int, Value::Int(v)) => buf[w].store(*v as u64, Relaxed),
            (Column::Float, Value::Float(v)) => buf[w].store(v.to_bits(), Relaxed),
            (Column::Float, Value::Int(v)) => buf[w].store((*v as f64).to_bits(), Relaxed),
            (Column::Str(max), Value::Str(s)) => {
                let len = s.len().min(max);
                buf[w].store(len as u64, Relaxed);
                store_bytes(&buf[w + 1..w + c.column.words()], &s[..len]);
            }
            _ => debug_assert!(false, "encode called with an unchecked value"),
        }
    }

    /// Reads column `idx` of `buf`. Never panics, whatever the words hold
    /// (they may be torn until the seqlock read is validated).
    #[inline]
    pub(crate) fn decode(&self, idx: usize, buf: &[AtomicU64]) -> Value {
        let c = &self.cols[idx];
        let w = c.word;
        match c.column {
            Column::Int => Value::Int(buf[w].load(Relaxed) as i64),
            Column::Float => Value::Float(f64::from_bits(buf[w].load(Relaxed))),
            Column::Str(max) => {
                let len = usize::try_from(buf[w].load(Relaxed))
                    .unwrap_or(max)
                    .min(max);
                Value::Str(load_bytes(&buf[w + 1..w + c.column.words()], len))
            }
        }
    }

    /// Reads every column of `buf`.
    #[inline]
    pub(crate) fn decode_all(&self, buf: &[AtomicU64]) -> Vec<Value> {
        (0..self.cols.len()).map(|i| self.decode(i, buf)).collect()
    }
}

/// Packs `bytes` little-endian into `words` (which must be long enough).
pub(crate) fn store_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (w, chunk) in words.iter().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        w.store(u64::from_le_bytes(b), Relaxed);
    }
}

/// Unpacks `len` bytes (clamped to what `words` holds) from `words`.
#[inline]
pub(crate) fn load_bytes(words: &[AtomicU64], len: usize) -> Vec<u8> {
    let len = len.min(words.len() * 8);
    let mut out = Vec::with_capacity(len);
    for w in &words[..len.div_ceil(8)] {
        out.extend_from_slice(&w.load(Relaxed).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A snapshot of one table row: every column's value, by name.
///
/// A `Row` is a copy: changing it does not change the table, except inside
/// [`Table::update`](crate::Table::update), which writes it back.
///
/// # Examples
///
/// ```
/// use rswoole_shm::{Column, Table};
/// let t = Table::builder(8)
///     .column("name", Column::Str(16))
///     .column("score", Column::Int)
///     .build()?;
/// t.set("k", &[("name", "ann".into()), ("score", 3.into())])?;
/// let row = t.get("k")?.expect("just set");
/// assert_eq!(row.str("name"), Some("ann"));
/// assert_eq!(row.int("score"), Some(3));
/// # Ok::<(), rswoole_shm::Error>(())
/// ```
#[derive(Clone)]
pub struct Row {
    pub(crate) schema: Arc<Schema>,
    pub(crate) values: Vec<Value>,
}

impl Row {
    /// The value of column `name`, or `None` if there is no such column.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let (i, _) = self.schema.find(name).ok()?;
        self.values.get(i)
    }

    /// Column `name` as an integer (`None` if missing or not an `Int`).
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(Value::as_int)
    }

    /// Column `name` as a float (`None` if missing or not a `Float`).
    pub fn float(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(Value::as_float)
    }

    /// Column `name` as text (`None` if missing, not a `Str`, or not UTF-8).
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Column `name` as bytes (`None` if missing or not a `Str`).
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.get(name).and_then(Value::as_bytes)
    }

    /// Replaces column `name`, checking the value against the column.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownColumn`], [`Error::TypeMismatch`] or
    /// [`Error::StrTooLong`]; the row is unchanged then.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("n", Column::Int).column("f", Column::Float).build()?;
    /// t.set("k", &[])?;
    /// let mut row = t.get("k")?.unwrap(); // a snapshot: setting it does not write the table
    /// row.set("f", 2)?; // an Int is accepted by a Float column
    /// assert_eq!(row.float("f"), Some(2.0));
    /// assert!(row.set("n", "text").is_err());
    /// assert_eq!(t.get("k")?.unwrap().float("f"), Some(0.0));
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> Result<()> {
        let (i, _) = self.schema.find(name)?;
        let value = value.into();
        self.schema.check(i, &value)?;
        let value = match (self.schema.cols[i].column, value) {
            (Column::Float, Value::Int(v)) => Value::Float(v as f64),
            (_, v) => v,
        };
        self.values[i] = value;
        Ok(())
    }

    /// `(column name, value)` pairs in column order.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table, Value};
    /// let t = Table::builder(8).column("a", Column::Int).column("b", Column::Str(4)).build()?;
    /// t.set("k", &[("a", 1.into()), ("b", "x".into())])?;
    /// let row = t.get("k")?.unwrap();
    /// let pairs: Vec<_> = row.iter().collect();
    /// assert_eq!(pairs, [("a", &Value::Int(1)), ("b", &Value::from("x"))]);
    /// assert_eq!(row.len(), 2);
    /// assert_eq!(row.into_values(), [Value::Int(1), Value::from("x")]);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        self.schema
            .cols
            .iter()
            .map(|c| c.name.as_str())
            .zip(self.values.iter())
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no columns (never true for a table row).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values in column order.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The row as a JSON object `{column: value}` (see [`Value::to_json`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_shm::{Column, Table};
    /// let t = Table::builder(8).column("name", Column::Str(8)).column("age", Column::Int).build()?;
    /// t.set("u1", &[("name", "ann".into()), ("age", 30.into())])?;
    /// let json = serde_json::Value::Object(t.get("u1")?.unwrap().to_json());
    /// assert_eq!(json.to_string(), r#"{"age":30,"name":"ann"}"#);
    /// # Ok::<(), rswoole_shm::Error>(())
    /// ```
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_json()))
            .collect()
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn schema_offsets_and_errors() {
        let s = Schema::new(vec![
            ("a".into(), Column::Int),
            ("b".into(), Column::Str(9)),
            ("c".into(), Column::Float),
        ])
        .unwrap();
        assert_eq!(s.cols[0].word, DATA_WORD);
        assert_eq!(s.cols[1].word, DATA_WORD + 1);
        assert_eq!(s.cols[2].word, DATA_WORD + 1 + 3);
        assert_eq!(s.buf_words, DATA_WORD + 5);
        assert!(Schema::new(vec![]).is_err());
        assert!(Schema::new(vec![("a".into(), Column::Int), ("a".into(), Column::Int)]).is_err());
        assert!(Schema::new(vec![("a".into(), Column::Str(0))]).is_err());
        assert!(Schema::new(vec![("x".repeat(33), Column::Int)]).is_err());
    }

    #[test]
    fn encode_decode_roundtrip() {
        let s = Schema::new(vec![
            ("i".into(), Column::Int),
            ("f".into(), Column::Float),
            ("s".into(), Column::Str(13)),
        ])
        .unwrap();
        let buf = words(s.buf_words);
        for (i, v) in [
            Value::Int(i64::MIN),
            Value::Float(f64::NEG_INFINITY),
            Value::Str(b"0123456789abc".to_vec()),
        ]
        .iter()
        .enumerate()
        {
            s.check(i, v).unwrap();
            s.encode(i, v, &buf);
            assert_eq!(&s.decode(i, &buf), v);
        }
        assert!(matches!(
            s.check(2, &Value::Str(vec![0; 14])),
            Err(Error::StrTooLong {
                len: 14,
                max: 13,
                ..
            })
        ));
        assert!(matches!(
            s.check(0, &Value::Float(1.0)),
            Err(Error::TypeMismatch { .. })
        ));
        // A torn length word never makes decode panic.
        buf[s.cols[2].word].store(u64::MAX, Relaxed);
        assert_eq!(s.decode(2, &buf).as_bytes().map(<[u8]>::len), Some(13));
    }
}
