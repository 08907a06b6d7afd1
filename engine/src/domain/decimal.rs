//! Fixed-point prices and quantities.
//!
//! A [`Price`] or [`Qty`] is an integer mantissa; the number of decimal places is a property
//! of the instrument (its [`Scale`]), not of each value. This keeps every value in 8 bytes,
//! makes comparisons and book lookups plain integer operations, and means a price read from an
//! exchange as `"101.25"` is written back to clients as exactly `"101.25"`: no `f64` rounding
//! anywhere between the wire and the book.

use std::fmt;

/// Number of decimal places of an instrument's prices or sizes (0..=18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Scale(u8);

/// Largest scale that still leaves room for realistic integer parts in an `i64`.
pub const MAX_SCALE: u8 = 18;

impl Scale {
    /// A scale of `places` decimal places.
    ///
    /// # Panics
    /// If `places > MAX_SCALE`; scales come from instrument definitions, never from traffic.
    pub const fn new(places: u8) -> Self {
        assert!(places <= MAX_SCALE, "scale out of range");
        Scale(places)
    }

    /// The number of decimal places.
    pub const fn places(self) -> u8 {
        self.0
    }

    /// `10^places` as an integer.
    pub const fn factor(self) -> i64 {
        10i64.pow(self.0 as u32)
    }
}

/// Why a decimal string could not become a fixed-point value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("empty number")]
    Empty,
    #[error("invalid character in number")]
    InvalidChar,
    #[error("more decimal places than the instrument's scale of {0}")]
    TooPrecise(u8),
    #[error("number out of range")]
    Overflow,
}

/// Parses a plain decimal string (`"-12.3400"`, `"7"`, `".5"`) into a mantissa at `scale`.
///
/// Extra trailing zeros beyond the scale are accepted (`"1.2500"` at scale 2); any other
/// digit beyond the scale is an error rather than a silent rounding.
pub fn parse_mantissa(s: &[u8], scale: Scale) -> Result<i64, DecimalError> {
    let (neg, digits) = match s.first() {
        None => return Err(DecimalError::Empty),
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(DecimalError::Empty);
    }
    let mut value: i64 = 0;
    let mut frac_places: u8 = 0;
    let mut seen_point = false;
    let mut seen_digit = false;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                seen_digit = true;
                if seen_point {
                    if frac_places == scale.0 {
                        if c != b'0' {
                            return Err(DecimalError::TooPrecise(scale.0));
                        }
                        continue;
                    }
                    frac_places += 1;
                }
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add((c - b'0') as i64))
                    .ok_or(DecimalError::Overflow)?;
            }
            b'.' if !seen_point => seen_point = true,
            _ => return Err(DecimalError::InvalidChar),
        }
    }
    if !seen_digit {
        return Err(DecimalError::Empty);
    }
    let missing = (scale.0 - frac_places) as u32;
    value = value
        .checked_mul(10i64.pow(missing))
        .ok_or(DecimalError::Overflow)?;
    Ok(if neg { -value } else { value })
}

/// Appends `mantissa` at `scale` as a decimal string with exactly `scale` places.
pub fn write_mantissa(out: &mut Vec<u8>, mantissa: i64, scale: Scale) {
    let mut buf = itoa::Buffer::new();
    let places = scale.0 as usize;
    if places == 0 {
        out.extend_from_slice(buf.format(mantissa).as_bytes());
        return;
    }
    if mantissa < 0 {
        out.push(b'-');
    }
    let digits = buf.format(mantissa.unsigned_abs()).as_bytes();
    if digits.len() <= places {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', places - digits.len()));
        out.extend_from_slice(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - places);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
}

macro_rules! fixed_point {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub i64);

        impl $name {
            /// Zero at any scale.
            pub const ZERO: $name = $name(0);

            /// Parses a decimal string at the instrument's `scale`.
            pub fn parse(s: &str, scale: Scale) -> Result<Self, DecimalError> {
                parse_mantissa(s.as_bytes(), scale).map($name)
            }

            /// The raw mantissa.
            pub const fn mantissa(self) -> i64 {
                self.0
            }

            /// Appends the exact decimal string at `scale`.
            pub fn write(self, out: &mut Vec<u8>, scale: Scale) {
                write_mantissa(out, self.0, scale)
            }

            /// A displayable view at `scale`.
            pub fn display(self, scale: Scale) -> impl fmt::Display {
                Displayed(self.0, scale)
            }
        }
    };
}

fixed_point!(
    Price,
    "A price as a mantissa at the instrument's price scale (`10125` at scale 2 is `101.25`)."
);
fixed_point!(
    Qty,
    "A size as a mantissa at the instrument's size scale; zero removes a level."
);

struct Displayed(i64, Scale);

impl fmt::Display for Displayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(24);
        write_mantissa(&mut out, self.0, self.1);
        // write_mantissa only emits ASCII digits, '-' and '.'.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(s: &str, places: u8) -> String {
        let scale = Scale::new(places);
        Price::parse(s, scale).unwrap().display(scale).to_string()
    }

    #[test]
    fn parses_and_formats_exactly() {
        assert_eq!(roundtrip("101.25", 2), "101.25");
        assert_eq!(roundtrip("101.2", 2), "101.20");
        assert_eq!(roundtrip("0.00012", 5), "0.00012");
        assert_eq!(roundtrip("-3.5", 3), "-3.500");
        assert_eq!(roundtrip("42", 0), "42");
        assert_eq!(roundtrip("2192.68000", 2), "2192.68");
        assert_eq!(roundtrip(".5", 1), "0.5");
    }

    #[test]
    fn rejects_bad_input() {
        let s = Scale::new(2);
        assert_eq!(Price::parse("", s), Err(DecimalError::Empty));
        assert_eq!(Price::parse("-", s), Err(DecimalError::Empty));
        assert_eq!(Price::parse("1.2.3", s), Err(DecimalError::InvalidChar));
        assert_eq!(Price::parse("1e5", s), Err(DecimalError::InvalidChar));
        assert_eq!(Price::parse("1.234", s), Err(DecimalError::TooPrecise(2)));
        assert_eq!(
            Price::parse("99999999999999999999", s),
            Err(DecimalError::Overflow)
        );
    }

    #[test]
    fn mantissa_is_scaled() {
        assert_eq!(
            Price::parse("101.25", Scale::new(2)).unwrap().mantissa(),
            10125
        );
        assert_eq!(
            Qty::parse("3", Scale::new(8)).unwrap().mantissa(),
            300_000_000
        );
    }
}
