//! Whether the words so far end a turn (docs/speech.md, "Turn-taking"): the recogniser's text at a short pause is
//! judged complete when it ends a sentence (`.`, `?`, `!`, and their CJK forms) and its last word is not one that
//! announces more (a conjunction, an article, a preposition, a hesitation) in the call's language. Trailing off
//! (`...`, `…`, a comma) is not complete. A person who pauses after a complete sentence and goes on is still
//! heard: the next words are their next utterance.

/// Last words that announce more, by language (the first two letters of its BCP 47 tag).
fn continuations(language: &str) -> &'static [&'static str] {
    match language.get(..2).unwrap_or_default() {
        "fr" => &[
            "et", "mais", "ou", "donc", "car", "parce", "que", "qui", "le", "la", "les", "un", "une", "des",
            "de", "du", "à", "au", "pour", "avec", "sur", "dans", "euh", "mon", "ma", "mes", "je", "si",
        ],
        "de" => &[
            "und", "aber", "oder", "weil", "dass", "der", "die", "das", "den", "dem", "ein", "eine", "einen",
            "zu", "mit", "für", "von", "auf", "in", "ähm", "äh", "mein", "meine", "ich", "wenn",
        ],
        "es" => &[
            "y", "pero", "o", "porque", "que", "el", "la", "los", "las", "un", "una", "de", "del", "a", "al",
            "para", "con", "en", "eh", "este", "mi", "mis", "yo", "si",
        ],
        "it" => &[
            "e", "ma", "o", "perché", "che", "il", "lo", "la", "i", "gli", "le", "un", "una", "di", "a",
            "da", "per", "con", "in", "ehm", "mio", "mia", "io", "se",
        ],
        _ => &[
            "and", "but", "or", "so", "because", "that", "which", "who", "the", "a", "an", "to", "of", "for",
            "with", "at", "in", "on", "from", "my", "your", "our", "um", "uh", "er", "erm", "hmm", "if", "i",
            "is", "are", "was", "like", "then", "than",
        ],
    }
}

/// Whether `text` (a recogniser's transcript) reads as a finished sentence in `language`.
pub fn sounds_complete(text: &str, language: &str) -> bool {
    let t = text.trim();
    if t.ends_with("...") || t.ends_with('…') {
        return false;
    }
    let Some(end) = t.chars().last() else {
        return false;
    };
    if !matches!(end, '.' | '?' | '!' | '。' | '？' | '！') {
        return false;
    }
    let last = t
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    if last.is_empty() {
        return false;
    }
    let language = language.to_ascii_lowercase();
    !continuations(&language).contains(&last.as_str())
}

#[cfg(test)]
mod tests {
    use super::sounds_complete;

    #[test]
    fn sentences_are_complete() {
        for t in [
            "Yes please.",
            "Who is this?",
            "No!",
            " Hello. ",
            "Call me tomorrow at 5.",
        ] {
            assert!(sounds_complete(t, "en-US"), "{t}");
        }
        assert!(sounds_complete("Oui, merci.", "fr-FR"));
        assert!(sounds_complete("好的。", "zh-CN"));
    }

    #[test]
    fn words_that_announce_more_are_not() {
        for t in [
            "I would like to.",
            "Yes and.",
            "It's for the.",
            "Um.",
            "Well, because.",
            "Let me think...",
            "Let me think…",
            "Yes please,",
            "Hello",
            "",
            ".",
        ] {
            assert!(!sounds_complete(t, "en-US"), "{t:?}");
        }
        assert!(!sounds_complete("Je voudrais le.", "fr-FR"));
        assert!(!sounds_complete("Ich möchte und.", "de-DE"));
        // The language decides: "le" ends nothing in English.
        assert!(sounds_complete("Ciao, sono le.", "en-US"));
        assert!(!sounds_complete("Ciao, sono le.", "it-IT"));
    }
}
