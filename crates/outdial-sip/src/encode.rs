//! Values go into SIP messages only through encoders of the SIP grammar (RFC 3261 §25.1), never by string
//! concatenation at a call site (docs/security.md): display names here, URI parts by the stack's URI encoder.

use crate::SipError;

/// The inside of a `quoted-string` (display names): `"` and `\` become quoted-pairs. Line breaks and other control
/// characters (but HTAB) have no place in a header: refused.
pub fn quoted_string(value: &str) -> Result<String, SipError> {
    // The stack re-reads the From header it wrote (for the dialog's later requests) with a parser that takes the
    // first '<' as the start of the URI and drops a final escaped quote: such names cannot be carried intact.
    if value.contains('<') || value.ends_with('"') {
        return Err(SipError::Invalid {
            what: "display name",
            value: value.escape_debug().to_string(),
            why: "'<' and a final '\"' cannot be carried by the SIP stack".into(),
        });
    }
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push(c),
            c if c.is_control() => {
                return Err(SipError::Invalid {
                    what: "display name",
                    value: value.escape_debug().to_string(),
                    why: "control characters cannot be sent in SIP".into(),
                });
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reverses [`quoted_string`] (for tests and logs): quoted-pairs become their character.
    pub fn unquote(inner: &str) -> String {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn display_names_cannot_leave_their_quotes() {
        assert_eq!(quoted_string("My \"quoted\" co").unwrap(), "My \\\"quoted\\\" co");
        assert_eq!(quoted_string("a\\b").unwrap(), "a\\\\b");
        let attack = "x\" sip:evil@attacker.example>;tag=1;q=\"x";
        let enc = quoted_string(attack).unwrap();
        assert_eq!(enc, "x\\\" sip:evil@attacker.example>;tag=1;q=\\\"x");
        assert_eq!(unquote(&enc), attack);
        assert!(quoted_string("x\" <sip:evil@attacker.example>").is_err());
        assert!(quoted_string("ends with \"").is_err());
        assert!(quoted_string("a\r\nX-Evil: 1").is_err());
        assert_eq!(quoted_string("Zoë\tKim").unwrap(), "Zoë\tKim");
    }
}
