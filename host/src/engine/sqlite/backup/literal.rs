//! SQL literals that evaluate to exactly the value they were written from,
//! in every SQLite that reads them (our restore, and the `sqlite3` shell of
//! any version): what a dump is made of.

use rusqlite::types::ValueRef;

/// Appends one value as an SQL literal that evaluates to exactly it.
pub(super) fn push_value(buf: &mut Vec<u8>, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => buf.extend_from_slice(b"NULL"),
        ValueRef::Integer(i) => buf.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        ValueRef::Real(f) => push_real(buf, f),
        ValueRef::Text(t) => push_text(buf, t),
        ValueRef::Blob(b) => push_blob(buf, b),
    }
}

/// Floats as an expression SQLite evaluates to exactly the same bits.
///
/// SQLite's decimal-to-float conversion is not correctly rounded (neither
/// the 3.40 shell's nor the 3.50 library's: `8.09810263174847e+128`, the
/// shortest form of a double, reads back one unit in the last place off),
/// and it differs between versions and platforms. So a float is written as
/// a plain decimal only when every one of them reads it back exactly (see
/// [`short_decimal`]: `0.37`, `123.45`, most values of a few digits);
/// otherwise as `m.0`, `m` its integer significand, followed by
/// multiplications or divisions by powers of two up to 2^62 written as
/// integers: every step is exact in IEEE arithmetic, whatever the parser.
/// Integral values below 2^53 need no step (`3.0`, `-0.0`); the infinities
/// are `9.0e+999` and `-9.0e+999` as sqlite3's own `.dump` writes them.
pub(super) fn push_real(buf: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        // SQLite never stores a NaN (it becomes NULL); keep it that way.
        buf.extend_from_slice(b"NULL");
        return;
    }
    if f.is_infinite() {
        buf.extend_from_slice(if f > 0.0 { b"9.0e+999" } else { b"-9.0e+999" });
        return;
    }
    if f.is_sign_negative() {
        buf.push(b'-');
    }
    let magnitude = f.abs();
    let Some((mut m, mut e)) = significand_and_exponent(magnitude) else {
        buf.extend_from_slice(b"0.0");
        return;
    };
    let zeros = m.trailing_zeros() as i32;
    m >>= zeros;
    e += zeros;
    // Integral and exactly representable as an integer: no steps needed.
    if e >= 0 && e <= 52 - (64 - m.leading_zeros() as i32) + 1 {
        buf.extend_from_slice(itoa::Buffer::new().format(m << e).as_bytes());
        buf.extend_from_slice(b".0");
        return;
    }
    if let Some(decimal) = short_decimal(magnitude) {
        decimal.write(buf);
        return;
    }
    buf.extend_from_slice(itoa::Buffer::new().format(m).as_bytes());
    buf.extend_from_slice(b".0");
    let op = if e > 0 { b'*' } else { b'/' };
    let mut left = e.unsigned_abs();
    while left > 0 {
        let step = left.min(62);
        buf.push(op);
        buf.extend_from_slice(itoa::Buffer::new().format(1u64 << step).as_bytes());
        left -= step;
    }
}

/// A positive finite float as `m * 2^e` (`m` the significand with its
/// hidden bit, not reduced); `None` for zero.
fn significand_and_exponent(f: f64) -> Option<(u64, i32)> {
    let bits = f.to_bits();
    let exponent_bits = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (m, e) = if exponent_bits == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), exponent_bits - 1075)
    };
    (m != 0).then_some((m, e))
}

/// A decimal `digits / 10^scale` with a fractional part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Decimal {
    digits: u64,
    scale: u32,
}

impl Decimal {
    /// Appends it as `123.45` or `0.00012`: no exponent, at least one digit
    /// before the point.
    fn write(self, buf: &mut Vec<u8>) {
        let mut text = itoa::Buffer::new();
        let digits = text.format(self.digits).as_bytes();
        let scale = self.scale as usize;
        if digits.len() > scale {
            let (whole, fraction) = digits.split_at(digits.len() - scale);
            buf.extend_from_slice(whole);
            buf.push(b'.');
            buf.extend_from_slice(fraction);
        } else {
            buf.extend_from_slice(b"0.");
            buf.resize(buf.len() + scale - digits.len(), b'0');
            buf.extend_from_slice(digits);
        }
    }
}

/// How close, relative to the value, a decimal may come to a point halfway
/// between two doubles and still be written as a decimal: 2^-56.
///
/// Every SQLite computes `digits / 10^scale` (for the decimals
/// [`short_decimal`] accepts: fewer than 2^53 digits, a scale of at most
/// 22) with a relative error before its final rounding of at most 22 times
/// 2^-63: up to 3.42, one division by an exact power of ten in `long double`
/// or `double` (one rounding, 2^-64 or exact then correctly rounded); in
/// 3.43 to 3.49 with `long double`, up to 11 multiplications by `1.0e-1L`
/// or `1.0e-10L` (each off by at most 2^-64, and rounded); since then, or
/// without `long double`, in double-double arithmetic (near 2^-100). A
/// decimal farther than this margin from every halfway point rounds to the
/// same double in all of them.
const HALFWAY_MARGIN_BITS: u32 = 56;

/// The shortest decimal that reads back as exactly `f` (positive, finite,
/// not an integer) in every SQLite, when there is one: the shortest
/// decimal that a correctly rounded conversion reads as `f`, if it has at
/// most 22 digits after the point, fewer than 2^53 digits in all, and lies
/// farther than [`HALFWAY_MARGIN_BITS`] from the points halfway to the
/// neighbouring doubles (the only places where a conversion that is not
/// correctly rounded could go the other way).
pub(super) fn short_decimal(f: f64) -> Option<Decimal> {
    let mut text = zmij::Buffer::new();
    let decimal = parse_shortest(text.format_finite(f))?;
    reads_back_exactly(decimal, f).then_some(decimal)
}

/// Reads the shortest form written by `zmij` (`0.37`, `1.5e-7`,
/// `1.2345e+20`) as digits and a scale; `None` if it has no fractional
/// part, too many digits or too large a scale.
fn parse_shortest(text: &str) -> Option<Decimal> {
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // "1.0" and "100.0": no fractional part.
    let fraction = fraction.trim_end_matches('0');
    let mut digits = 0u64;
    for c in whole.bytes().chain(fraction.bytes()) {
        digits = digits
            .checked_mul(10)?
            .checked_add(u64::from(c.checked_sub(b'0').filter(|d| *d <= 9)?))?;
    }
    let scale = i32::try_from(fraction.len()).ok()? - exponent;
    if digits == 0 || digits >= 1 << 53 || !(1..=22).contains(&scale) || digits.is_multiple_of(10) {
        return None;
    }
    Some(Decimal {
        digits,
        scale: scale as u32,
    })
}

/// Whether `decimal` lies strictly between the points halfway from `f` to
/// its neighbours, farther than the margin from both: exact integer
/// arithmetic on `digits * 2^k` against `halfway * 10^scale`.
fn reads_back_exactly(decimal: Decimal, f: f64) -> bool {
    let Some((m, e)) = significand_and_exponent(f) else {
        return false;
    };
    // Both halfway points as multiples of 2^(e - 2): (4m + 2) above; below,
    // (4m - 2), or (4m - 1) at the bottom of a binade, where the double
    // below is half as far.
    let binade_bottom = m == 1 << 52 && e > -1074;
    let above = 4 * u128::from(m) + 2;
    let below = 4 * u128::from(m) - if binade_bottom { 1 } else { 2 };
    let shift = 2 - e;
    // A float with a fractional part below 2^53 has e < 0.
    if shift <= 0 || shift as u32 + 64 - decimal.digits.leading_zeros() > 127 {
        return false;
    }
    let value = u128::from(decimal.digits) << shift;
    let power = 10u128.pow(decimal.scale);
    let (Some(above), Some(below)) = (above.checked_mul(power), below.checked_mul(power)) else {
        return false;
    };
    let margin = value >> HALFWAY_MARGIN_BITS;
    below < value && value < above && value - below > margin && above - value > margin
}

/// Text: `'...'` with quotes doubled; runs of NUL, CR and LF as
/// `char(...)` joined by `||` (the shell's line reader would drop a CR
/// before LF and stop at NUL); text that is not UTF-8 as raw bytes cast
/// to text.
pub(super) fn push_text(buf: &mut Vec<u8>, t: &[u8]) {
    if std::str::from_utf8(t).is_err() {
        buf.extend_from_slice(b"CAST(");
        push_blob(buf, t);
        buf.extend_from_slice(b" AS TEXT)");
        return;
    }
    if memchr::memchr3(b'\n', b'\r', 0, t).is_none() {
        push_quoted(buf, t);
        return;
    }
    let is_control = |c: u8| c == b'\n' || c == b'\r' || c == 0;
    let mut rest = t;
    let mut first = true;
    while !rest.is_empty() {
        if !first {
            buf.extend_from_slice(b"||");
        }
        first = false;
        let control = is_control(rest[0]);
        let end = rest
            .iter()
            .position(|&c| is_control(c) != control)
            .unwrap_or(rest.len());
        if control {
            buf.extend_from_slice(b"char(");
            for (i, &c) in rest[..end].iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                buf.extend_from_slice(itoa::Buffer::new().format(c).as_bytes());
            }
            buf.push(b')');
        } else {
            push_quoted(buf, &rest[..end]);
        }
        rest = &rest[end..];
    }
}

fn push_quoted(buf: &mut Vec<u8>, t: &[u8]) {
    buf.push(b'\'');
    let mut rest = t;
    while let Some(i) = memchr::memchr(b'\'', rest) {
        buf.extend_from_slice(&rest[..=i]);
        buf.push(b'\'');
        rest = &rest[i + 1..];
    }
    buf.extend_from_slice(rest);
    buf.push(b'\'');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Each byte's two hexadecimal digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

/// A blob: `X'...'`, two lowercase hexadecimal digits a byte.
pub(super) fn push_blob(buf: &mut Vec<u8>, b: &[u8]) {
    buf.reserve(b.len() * 2 + 3);
    buf.extend_from_slice(b"X'");
    let start = buf.len();
    buf.resize(start + 2 * b.len(), 0);
    for (pair, &byte) in buf[start..].chunks_exact_mut(2).zip(b) {
        pair.copy_from_slice(&HEX_PAIRS[byte as usize]);
    }
    buf.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(f: f64) -> String {
        let mut buf = Vec::new();
        push_real(&mut buf, f);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn floats_of_few_digits_are_written_as_plain_decimals() {
        assert_eq!(real(0.37), "0.37");
        assert_eq!(real(-123.45), "-123.45");
        assert_eq!(real(0.000123), "0.000123");
        assert_eq!(real(1.5e-7), "0.00000015");
        assert_eq!(real(12345678.9), "12345678.9");
        assert_eq!(real(3.0), "3.0");
        assert_eq!(real(-0.0), "-0.0");
    }

    #[test]
    fn floats_without_a_safe_short_decimal_keep_the_exact_form() {
        // 17 significant digits: more than 2^53 in its digits.
        assert_eq!(real(0.1 + 0.2), "1351079888211149.0/4503599627370496");
        // Too small for a scale of 22.
        assert_eq!(
            real(1e-30),
            "178405961588245.0/4611686018427387904/4611686018427387904/8388608"
        );
        // An integer beyond 2^53, and one beyond 2^62.
        assert_eq!(real(1e20), "95367431640625.0*1048576");
    }

    #[test]
    fn every_accepted_decimal_is_the_correctly_rounded_reading() {
        // Decimals of 1 to 15 digits at scales 1 to 22, and the floats
        // nearest them: whenever a decimal is accepted, a correctly rounded
        // reading of it gives the float back.
        let mut state = 0x2545f4914f6cdd1du64;
        let mut accepted = 0;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let digits = state % 10u64.pow(1 + (state >> 60) as u32 % 15);
            let scale = 1 + (state >> 40) as u32 % 22;
            let text = format!("{digits}e-{scale}");
            let f: f64 = text.parse().unwrap();
            if f == 0.0 || f.fract() == 0.0 {
                continue;
            }
            if let Some(d) = short_decimal(f) {
                accepted += 1;
                let mut buf = Vec::new();
                d.write(&mut buf);
                let back: f64 = std::str::from_utf8(&buf).unwrap().parse().unwrap();
                assert_eq!(back.to_bits(), f.to_bits(), "{text} written as {buf:?}");
            }
        }
        assert!(
            accepted > 150_000,
            "most short decimals are kept short: {accepted}"
        );
    }

    #[test]
    fn a_decimal_near_a_halfway_point_is_refused() {
        // The doubles 0.5 + j * 2^-53, and the 16-digit decimals nearest
        // the points halfway between each and the next: about a quarter of
        // them lie within the margin, and each of those is refused.
        let mut near = 0;
        for j in 1..4000u64 {
            let f = 0.5 + j as f64 * 2f64.powi(-53);
            // halfway = (2^53 + 2j + 1) / 2^54; nearest digits at scale 16.
            let halfway_numerator = (1u128 << 53) + 2 * u128::from(j) + 1;
            let scaled = halfway_numerator * 10u128.pow(16);
            let digits = ((scaled + (1 << 53)) >> 54) as u64;
            let decimal = Decimal { digits, scale: 16 };
            let distance = (u128::from(digits) << 54).abs_diff(scaled);
            let within_margin = distance << HALFWAY_MARGIN_BITS <= u128::from(digits) << 54;
            if within_margin {
                near += 1;
                assert!(!reads_back_exactly(decimal, f), "{digits}e-16 for {f:?}");
                let next = f64::from_bits(f.to_bits() + 1);
                assert!(
                    !reads_back_exactly(decimal, next),
                    "{digits}e-16 for {next:?}"
                );
            }
        }
        assert!(
            near > 100,
            "the search found decimals near halfway points: {near}"
        );
    }

    #[test]
    fn text_and_blobs() {
        let mut buf = Vec::new();
        push_text(&mut buf, b"it's");
        buf.push(b' ');
        push_text(&mut buf, b"a\r\nb\0");
        buf.push(b' ');
        push_text(&mut buf, &[0xff]);
        buf.push(b' ');
        push_blob(&mut buf, &[0, 0xab]);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "'it''s' 'a'||char(13,10)||'b'||char(0) CAST(X'ff' AS TEXT) X'00ab'"
        );
    }
}
