//! Scalar value syntaxes of the format: durations, rates, percentages, port ranges and
//! comparisons. Each parser returns a message that says what is expected.

use std::fmt;
use std::time::Duration;

/// Parses a duration: one or more `NUMBERunit` parts with units `h`, `m`, `s`, `ms`, `us`
/// in decreasing order (`150ms`, `20s`, `2m`, `1h`, `2h4m`, `1m30s`); a single part may
/// have a fraction (`1.5s`). `0` alone is zero.
///
/// # Errors
/// A message describing the expected syntax.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration; write e.g. 150ms, 20s, 2m, 1h or 2h4m");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(bad());
    }
    let mut rest = t;
    let mut total: f64 = 0.0; // nanoseconds
    let mut last_rank = usize::MAX;
    let mut parts = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{s}` has no unit; write e.g. {s}s or {s}ms"))?;
        if num_len == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        let after = &rest[num_len..];
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let unit = &after[..unit_len];
        let (rank, secs) = match unit {
            "h" => (0, 3600e9),
            "m" => (1, 60e9),
            "s" => (2, 1e9),
            "ms" => (3, 1e6),
            "us" | "µs" => (4, 1e3),
            "" if after.is_empty() => {
                return Err(format!("`{s}` has no unit; use h, m, s, ms or us"));
            }
            "" => return Err(bad()),
            u => {
                return Err(format!(
                    "`{s}`: unknown duration unit `{u}`; use h, m, s, ms or us"
                ));
            }
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(format!(
                "`{s}`: units must go from large to small, each once (like 2h4m)"
            ));
        }
        last_rank = rank;
        parts += 1;
        total += num * secs;
        rest = &after[unit_len..];
    }
    if parts > 1 && t.contains('.') {
        return Err(format!(
            "`{s}`: only a single-unit duration may have a fraction"
        ));
    }
    // At most ~31 years; `total` is in nanoseconds so whole milliseconds stay exact.
    if !total.is_finite() || total > 1e18 {
        return Err(format!("`{s}` is too long a duration"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Formats a duration the way the format writes them (`2h4m`, `150ms`, `1m30s500ms`);
/// below a microsecond is dropped.
pub fn format_duration(d: Duration) -> String {
    let mut us = d.as_micros();
    if us == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("h", 3_600_000_000u128),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1000),
        ("us", 1),
    ] {
        if us >= size {
            out.push_str(&format!("{}{unit}", us / size));
            us %= size;
        }
    }
    out
}

/// A data rate in bits per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate {
    /// Bits per second.
    pub bits_per_sec: u64,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bits_per_sec;
        for (unit, size) in [("gbit", 1_000_000_000), ("mbit", 1_000_000), ("kbit", 1000)] {
            if b >= size && b.is_multiple_of(size) {
                return write!(f, "{}{unit}", b / size);
            }
        }
        write!(f, "{b}bit")
    }
}

/// Parses a rate: a number and one of the units `bit`, `kbit`, `mbit`, `gbit` (decimal
/// multiples of 1000; units are case-insensitive, so `Mbit` = `mbit`), e.g. `64kbit`,
/// `1.5mbit`.
///
/// # Errors
/// A message describing the expected syntax.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let t = s.trim();
    let bad =
        || format!("`{s}` is not a rate; write e.g. 64kbit, 1mbit (units: bit, kbit, mbit, gbit)");
    let n = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let num: f64 = t[..n].parse().map_err(|_| bad())?;
    let mult = match t[n..].trim().to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return Err(bad()),
    };
    let v = num * mult;
    if !(1.0..=1e13).contains(&v) {
        return Err(format!("`{s}`: a rate must be between 1bit and 10000gbit"));
    }
    Ok(Rate {
        bits_per_sec: v.round() as u64,
    })
}

/// Parses a percentage `2%`, `0.5%` into a fraction (`0.02`, `0.005`), 0% to 100%.
///
/// # Errors
/// A message describing the expected syntax.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let Some(num) = t.strip_suffix('%') else {
        return Err(format!("`{s}` is not a percentage; write e.g. 2% or 0.5%"));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage; write e.g. 2% or 0.5%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("`{s}`: a percentage must be between 0% and 100%"));
    }
    Ok(v / 100.0)
}

/// Parses a plain number (integer or decimal).
///
/// # Errors
/// A message describing the expected syntax.
pub fn parse_number(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{s}` is not a finite number"))
    }
}

/// Parses a YAML boolean (`true`/`false`, also `True`, `FALSE`).
///
/// # Errors
/// A message describing the expected values.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "True" | "TRUE" => Ok(true),
        "false" | "False" | "FALSE" => Ok(false),
        _ => Err(format!("`{s}` is not a boolean; write true or false")),
    }
}

/// An inclusive range of ports: `443` or `1000-2000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (= `first` for a single port).
    pub last: u16,
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// How many ports the range holds.
    pub fn count(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Parses a port (1–65535).
///
/// # Errors
/// A message describing the expected syntax.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "`{s}` is not a port; write a number from 1 to 65535"
        )),
    }
}

/// Parses `443` or `1000-2000` (first ≤ last).
///
/// # Errors
/// A message describing the expected syntax.
pub fn parse_port_range(s: &str) -> Result<PortRange, String> {
    let t = s.trim();
    let (a, b) = t.split_once('-').unwrap_or((t, t));
    let bad = || format!("`{s}` is not a port or port range; write e.g. 443 or 1024-65535");
    let first = parse_port(a).map_err(|_| bad())?;
    let last = parse_port(b).map_err(|_| bad())?;
    if first > last {
        return Err(format!(
            "`{s}`: the range starts after it ends; write {last}-{first}"
        ));
    }
    Ok(PortRange { first, last })
}

/// A User-Agent pattern of a `media-relay`'s `asymmetric_clients` list (the seeds'
/// "asymmetric clients list", matched on the SIP `User-Agent` header, RFC 3261 §20.41):
/// a case-insensitive (ASCII) substring, where `*` stands for any run of characters.
/// `grandstream` matches `Grandstream GXP2000 1.1.6.46`; `linksys*2.0` matches
/// `Linksys/SPA942-6.1.5 (2.0)`. Unanchored: a leading or trailing `*` changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UaPattern {
    /// The pattern as written.
    pub text: String,
}

impl UaPattern {
    /// Whether `user_agent` matches: the pattern's `*`-separated pieces occur in it, in
    /// order, without overlapping, ignoring ASCII case.
    pub fn matches(&self, user_agent: &str) -> bool {
        let ua = user_agent.to_ascii_lowercase();
        let mut from = 0;
        for piece in self.text.split('*').filter(|p| !p.is_empty()) {
            let piece = piece.to_ascii_lowercase();
            match ua[from..].find(&piece) {
                Some(i) => from += i + piece.len(),
                None => return false,
            }
        }
        true
    }
}

impl fmt::Display for UaPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses a User-Agent pattern: printable text with at least one character other than
/// `*` (a pattern of only `*` would match every client: write `latching: off` instead).
///
/// # Errors
/// A message describing the expected syntax.
pub fn parse_ua_pattern(s: &str) -> Result<UaPattern, String> {
    if s.trim().is_empty() || s.chars().all(|c| c == '*' || c.is_whitespace()) {
        return Err(format!(
            "`{s}` matches every client; write part of a User-Agent like `Grandstream*1.0` \
             (or `latching: off` to treat every client as asymmetric)"
        ));
    }
    if s.chars().any(char::is_control) {
        return Err("a User-Agent pattern holds no control characters".to_string());
    }
    Ok(UaPattern {
        text: s.to_string(),
    })
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==` (also a bare value)
    Eq,
    /// `>=`
    Ge,
    /// `>`
    Gt,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ge => ">=",
            Op::Gt => ">",
        })
    }
}

/// An expectation's comparison, such as `"< 3%"` or `">= 3.8"`: the measured value is on
/// the left. `T` is the measure's type: [`Duration`], a fraction (`f64`, for percentages)
/// or a number (`f64`), or an exit status (`i64`).
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison<T> {
    /// The operator.
    pub op: Op,
    /// The value to compare the measurement with.
    pub value: T,
    /// The comparison as written, for reports.
    pub text: String,
}

impl<T: PartialOrd> Comparison<T> {
    /// Whether `measured OP value` holds.
    pub fn check(&self, measured: &T) -> bool {
        match self.op {
            Op::Lt => measured < &self.value,
            Op::Le => measured <= &self.value,
            Op::Eq => measured == &self.value,
            Op::Ge => measured >= &self.value,
            Op::Gt => measured > &self.value,
        }
    }
}

impl<T> fmt::Display for Comparison<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses `OP VALUE` (`<`, `<=`, `==`, `>=`, `>`; a bare value means `==`) with `value`
/// parsing the right-hand side.
///
/// # Errors
/// A message describing the expected syntax.
pub fn parse_comparison<T>(
    s: &str,
    value: impl Fn(&str) -> Result<T, String>,
) -> Result<Comparison<T>, String> {
    let t = s.trim();
    let (op, rest) = if let Some(r) = t.strip_prefix("<=") {
        (Op::Le, r)
    } else if let Some(r) = t.strip_prefix(">=") {
        (Op::Ge, r)
    } else if let Some(r) = t.strip_prefix("==") {
        (Op::Eq, r)
    } else if let Some(r) = t.strip_prefix('<') {
        (Op::Lt, r)
    } else if let Some(r) = t.strip_prefix('>') {
        (Op::Gt, r)
    } else if t.starts_with('=') || t.starts_with('!') {
        return Err(format!(
            "`{s}`: unknown operator; use <, <=, ==, >= or > (a bare value means ==)"
        ));
    } else {
        (Op::Eq, t)
    };
    let value = value(rest.trim())?;
    Ok(Comparison {
        op,
        value,
        text: t.to_string(),
    })
}

/// Whether two scalars mean the same value: equal text, or equal as a duration, a
/// percentage, a rate, a number or a boolean (`0%` = `0.0%`, `1s` = `1000ms`).
pub fn same_meaning(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim(), b.trim());
    if a == b {
        return true;
    }
    if let (Ok(x), Ok(y)) = (parse_duration(a), parse_duration(b)) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (parse_percent(a), parse_percent(b)) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (parse_rate(a), parse_rate(b)) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (parse_number(a), parse_number(b)) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (parse_bool(a), parse_bool(b)) {
        return x == y;
    }
    false
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("150ms").unwrap(), Duration::from_millis(150));
        assert_eq!(parse_duration("2h4m").unwrap(), Duration::from_secs(7440));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("20").is_err());
        assert!(parse_duration("4m2h").is_err());
        assert!(parse_duration("2x").is_err());
        assert!(parse_duration("1s1s").is_err());
        assert_eq!(format_duration(Duration::from_secs(7440)), "2h4m");
        assert_eq!(format_duration(Duration::from_millis(150)), "150ms");
    }

    #[test]
    fn rates_percent_ports() {
        assert_eq!(parse_rate("64kbit").unwrap().bits_per_sec, 64_000);
        assert_eq!(parse_rate("1Mbit").unwrap().bits_per_sec, 1_000_000);
        assert!(parse_rate("1mb").is_err());
        assert_eq!(parse_rate("256kbit").unwrap().to_string(), "256kbit");
        assert_eq!(parse_percent("0.5%").unwrap(), 0.005);
        assert!(parse_percent("2").is_err());
        assert!(parse_percent("101%").is_err());
        assert_eq!(parse_port_range("443").unwrap().count(), 1);
        assert_eq!(parse_port_range("1024-65535").unwrap().first, 1024);
        assert!(parse_port_range("2000-1000").is_err());
    }

    #[test]
    fn comparisons() {
        let c = parse_comparison("< 3%", parse_percent).unwrap();
        assert!(c.check(&0.02) && !c.check(&0.03));
        let c = parse_comparison(">= 3.8", parse_number).unwrap();
        assert!(c.check(&3.8));
        let c = parse_comparison("0", parse_number).unwrap();
        assert_eq!(c.op, Op::Eq);
        let c = parse_comparison("> 25s", parse_duration).unwrap();
        assert!(c.check(&Duration::from_secs(26)));
        assert!(parse_comparison("=< 3", parse_number).is_err());
        assert!(same_meaning("0%", "0.0%"));
        assert!(same_meaning("1s", "1000ms"));
        assert!(!same_meaning("symmetric", "full-cone"));
    }

    #[test]
    fn user_agent_patterns() {
        let p = |s: &str| parse_ua_pattern(s).unwrap();
        assert!(p("grandstream").matches("Grandstream GXP2000 1.1.6.46"));
        assert!(p("Linksys*2.0").matches("Linksys/SPA942-6.1.5 (2.0)"));
        assert!(!p("linksys*2.0").matches("2.0 Linksys"));
        assert!(p("*snom*").matches("snom360/8.7.3"));
        assert!(!p("a*a").matches("a"));
        assert!(p("a*a").matches("aa"));
        assert!(!p("polycom").matches("Grandstream"));
        assert!(parse_ua_pattern("*").is_err());
        assert!(parse_ua_pattern(" ").is_err());
        assert!(parse_ua_pattern("a\u{7}").is_err());
    }
}
