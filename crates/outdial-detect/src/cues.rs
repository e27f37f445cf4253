//! The second opinion's reading of a transcript (docs/detection.md, "Second opinion"): phrases that only a
//! machine says, in English, French, Spanish and Italian — a call-screening service, a carrier's intercept, an IVR
//! menu, a voicemail greeting — and long digit strings (extensions, phone numbers read out).

use serde::Serialize;

/// What the words show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Cue {
    /// A call-screening service asks who is calling (cause `SCREENING`).
    Screening,
    /// A carrier announcement: not in service, all circuits busy (cause `INTERCEPT`).
    Intercept,
    /// A menu: press one, your call is important (cause `IVR`).
    Ivr,
    /// A voicemail greeting: leave a message, not available, after the tone (cause `VOICEMAIL`).
    Voicemail,
}

impl Cue {
    pub fn cause(self) -> &'static str {
        match self {
            Cue::Screening => "SCREENING",
            Cue::Intercept => "INTERCEPT",
            Cue::Ivr => "IVR",
            Cue::Voicemail => "VOICEMAIL",
        }
    }
}

/// Phrases per cue, normalised (lower case, no accents, no punctuation). The first cue that matches wins, in this
/// order: a screening service also speaks of names and messages, an intercept of numbers.
const PHRASES: [(Cue, &[&str]); 4] = [
    (
        Cue::Screening,
        &[
            "screening service",
            "call screening",
            "say your name",
            "state your name",
            "record your name",
            "announce yourself",
            "why you are calling",
            "why you re calling",
            "reason for your call",
            "does not accept unidentified",
            "not accept calls from unidentified",
            "unidentified callers",
            "who is calling and why",
            "dites votre nom",
            "dire votre nom",
            "enregistrer votre nom",
            "appels non identifies",
            "appels anonymes",
            "filtrage d appels",
            "diga su nombre",
            "decir su nombre",
            "llamadas no identificadas",
            "llamadas anonimas",
            "filtro de llamadas",
            "dica il suo nome",
            "pronunci il suo nome",
            "registrare il suo nome",
            "chiamate anonime",
            "chiamate non identificate",
        ],
    ),
    (
        Cue::Intercept,
        &[
            "not in service",
            "no longer in service",
            "has been disconnected",
            "all circuits are busy",
            "circuits are busy",
            "number you have dialed",
            "number you have dialled",
            "check the number",
            "cannot be completed",
            "could not be completed",
            "n est pas en service",
            "n est plus en service",
            "numero que vous avez compose",
            "tous les circuits",
            "no esta en servicio",
            "numero que usted marco",
            "todos los circuitos",
            "non e in servizio",
            "non e piu attivo",
            "numero selezionato",
            "linee sono occupate",
        ],
    ),
    (
        Cue::Ivr,
        &[
            "press one",
            "press 1",
            "press two",
            "press 2",
            "press the pound",
            "press star",
            "for english",
            "main menu",
            "menu options",
            "please listen carefully",
            "your call is important",
            "please hold",
            "appuyez sur",
            "tapez le",
            "oprima",
            "presione",
            "marque el",
            "prema il",
            "prema uno",
            "digiti il",
        ],
    ),
    (
        Cue::Voicemail,
        &[
            "leave a message",
            "leave your message",
            "leave me a message",
            "leave your name",
            "after the tone",
            "after the beep",
            "at the tone",
            "not available",
            "unavailable",
            "can t take your call",
            "cannot take your call",
            "can t come to the phone",
            "is on the phone",
            "on another call",
            "away from",
            "voicemail",
            "voice mail",
            "mailbox",
            "get back to you",
            "call you back",
            "you have reached",
            "you ve reached",
            "laisser un message",
            "laissez un message",
            "laissez votre message",
            "apres le bip",
            "apres le signal",
            "apres la tonalite",
            "pas disponible",
            "messagerie",
            "boite vocale",
            "deje su mensaje",
            "deje un mensaje",
            "despues del tono",
            "no esta disponible",
            "no se encuentra disponible",
            "buzon",
            "lasci un messaggio",
            "lasciare un messaggio",
            "dopo il segnale",
            "dopo il bip",
            "non e disponibile",
            "segreteria",
        ],
    ),
];

/// A voicemail's request in its many wordings ("leave me a brief message", "leave my message" as a recogniser
/// may hear it, "laissez-moi votre message"): a verb of leaving, then within three words a word for message.
const LEAVE: [&str; 14] = [
    "leave", "laissez", "laisser", "laisse", "deje", "dejeme", "dejame", "dejenos", "dejar", "deja", "dejen",
    "lasci", "lasciare", "lasciate",
];
const MESSAGE: [&str; 5] = ["message", "messages", "mensaje", "messaggio", "messaggi"];

/// Number words that, four in a row, read out a phone number or an extension.
const DIGIT_WORDS: [&str; 11] = [
    "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// Lower case, accents folded, anything but letters and digits a space, spaces single.
pub fn normalise(text: &str) -> String {
    let folded: String = text
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' => 'a',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' => 'o',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The cue in a transcript, with the phrase that showed it.
pub fn classify(text: &str) -> Option<(Cue, &'static str)> {
    let t = format!(" {} ", normalise(text));
    for (cue, phrases) in PHRASES {
        if let Some(p) = phrases.iter().find(|p| t.contains(&format!(" {p} "))) {
            return Some((cue, p));
        }
    }
    if leave_message(&t) {
        return Some((Cue::Voicemail, "leave … message"));
    }
    digits(&t).then_some((Cue::Voicemail, "a number read out"))
}

/// A word of [`LEAVE`] followed within three words by one of [`MESSAGE`].
fn leave_message(t: &str) -> bool {
    let words: Vec<&str> = t.split_whitespace().collect();
    words
        .iter()
        .enumerate()
        .any(|(i, w)| LEAVE.contains(w) && words[i + 1..].iter().take(4).any(|m| MESSAGE.contains(m)))
}

/// Four digits or more in a row (as numerals or English number words).
fn digits(t: &str) -> bool {
    let mut run = 0;
    for w in t.split(' ').filter(|w| !w.is_empty()) {
        if w.chars().all(|c| c.is_ascii_digit()) {
            run += w.len();
        } else if DIGIT_WORDS.contains(&w) {
            run += 1;
        } else {
            run = 0;
        }
        if run >= 4 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cue(t: &str) -> Option<Cue> {
        classify(t).map(|(c, _)| c)
    }

    #[test]
    fn machines_are_known_by_their_words_in_four_languages() {
        let screening = "Hi. The person you're calling is using a screening service. Please say your name.";
        assert_eq!(cue(screening), Some(Cue::Screening));
        assert_eq!(
            cue("The party you are trying to reach does not accept unidentified calls."),
            Some(Cue::Screening)
        );
        assert_eq!(cue("Dites votre nom après le bip."), Some(Cue::Screening));
        assert_eq!(
            cue("The number you have dialed is not in service."),
            Some(Cue::Intercept)
        );
        assert_eq!(cue("Todos los circuitos están ocupados."), Some(Cue::Intercept));
        assert_eq!(cue("For sales, press one. For support, press 2."), Some(Cue::Ivr));
        assert_eq!(cue("Per l'assistenza prema il tasto uno."), Some(Cue::Ivr));
        assert_eq!(
            cue("Hi, you've reached Sam, leave a message after the tone."),
            Some(Cue::Voicemail)
        );
        assert_eq!(
            cue("La persona no está disponible, deje su mensaje."),
            Some(Cue::Voicemail)
        );
        assert_eq!(cue("Laissez un message après le bip."), Some(Cue::Voicemail));
        assert_eq!(cue("Il numero non è disponibile."), Some(Cue::Voicemail));
        assert_eq!(cue("The person at extension 4 5 1 2"), Some(Cue::Voicemail));
        assert_eq!(cue("five five five one two three four"), Some(Cue::Voicemail));
        for t in [
            "Hey, this is Tom. Leave my message.",
            "Please leave me a brief message",
            "Laissez-moi votre message.",
            "Déjeme su mensaje, por favor.",
            "Lasciate pure un messaggio.",
        ] {
            assert_eq!(cue(t), Some(Cue::Voicemail), "{t}");
        }
    }

    #[test]
    fn what_people_say_has_no_cue() {
        for t in [
            "Hello?",
            "Hello, who is this?",
            "Yes, speaking.",
            "Allô, un instant s'il vous plaît.",
            "Hola, ¿quién habla?",
            "Pronto, chi parla?",
            "Hi, this is Dana, one moment please.",
            "I'm on the 2nd floor",
            "Leave it there, I'll read the message later.",
            "",
        ] {
            assert_eq!(classify(t), None, "{t}");
        }
    }
}
