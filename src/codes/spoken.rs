//! What the caller keyed or said, as digits: pure, so property tests can throw anything at it.

/// What the caller keyed or said, as digits: spaces, dashes, dots and commas dropped; spoken digits
/// ("one two three", "oh" for 0, "double five") turned into digits, as ASR n-best results come.
/// `None` when anything else is left, which then counts as a wrong code.
pub fn normalise_code(raw: &str) -> Option<String> {
    let lower = raw.to_lowercase();
    let mut out = String::new();
    let mut repeat = 1;
    for token in lower.split(|c: char| c.is_whitespace() || matches!(c, '-' | '.' | ',' | '_')) {
        if token.is_empty() {
            continue;
        }
        let word = match token {
            "zero" | "oh" | "o" | "nought" | "nil" => Some('0'),
            "one" => Some('1'),
            "two" => Some('2'),
            "three" => Some('3'),
            "four" => Some('4'),
            "five" => Some('5'),
            "six" => Some('6'),
            "seven" => Some('7'),
            "eight" => Some('8'),
            "nine" => Some('9'),
            "double" => {
                repeat = 2;
                continue;
            }
            "triple" => {
                repeat = 3;
                continue;
            }
            _ => None,
        };
        match word {
            Some(d) => (0..repeat).for_each(|_| out.push(d)),
            None if token.bytes().all(|b| b.is_ascii_digit()) => {
                let mut chars = token.chars();
                if let Some(first) = chars.next() {
                    (0..repeat).for_each(|_| out.push(first));
                }
                out.extend(chars);
            }
            None => return None,
        }
        repeat = 1;
        if out.len() > 32 {
            return None;
        }
    }
    (!out.is_empty() && repeat == 1).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_keyed_and_spoken_codes() {
        let cases = [
            ("123456", Some("123456")),
            ("123 456", Some("123456")),
            ("12-34-56", Some("123456")),
            ("1.2.3.4.5.6", Some("123456")),
            ("one two three four five six", Some("123456")),
            ("oh one two three four five", Some("012345")),
            ("One Two 3 4 five 6", Some("123456")),
            ("double five one two three", Some("55123")),
            ("triple 0 one", Some("0001")),
            ("12345a", None),
            ("", None),
            ("   ", None),
            ("double", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise_code(raw).as_deref(), want, "input {raw:?}");
        }
    }
}
