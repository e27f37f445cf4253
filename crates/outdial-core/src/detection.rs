//! Tuning of answering-machine detection, per bot (`machineDetectionConfig`). Names follow Asterisk's
//! `app_amd` where they mean the same thing; every value is validated with the API's messages.

use crate::validate::{Obj, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MachineDetectionConfig {
    /// Silence before any speech longer than this → machine (`INITIALSILENCE`).
    pub initial_silence_ms: u32,
    /// Speech in the greeting longer than this → machine (`LONGGREETING`).
    pub greeting_ms: u32,
    /// Silence after a greeting (shorter than `greetingMs`) this long → human (`HUMAN`).
    pub after_greeting_silence_ms: u32,
    /// No decision within this → unknown (`TOOLONG`).
    pub total_analysis_ms: u32,
    /// Voice shorter than this is not a word.
    pub min_word_length_ms: u32,
    /// Silence that separates two words.
    pub between_words_silence_ms: u32,
    /// This many words → machine (`MAXWORDS`).
    pub maximum_words: u32,
    /// One word longer than this → machine (`LONGWORD`).
    pub maximum_word_length_ms: u32,
    /// Neural VAD score (0–1) from which a frame is voice.
    pub vad_threshold: f32,
    /// Frames quieter than this (dBFS) are never voice.
    pub min_voice_level_db: f32,
    /// A beep is a single steady tone in this band …
    pub beep_min_hz: u32,
    pub beep_max_hz: u32,
    /// … lasting at least / at most this long.
    pub beep_min_ms: u32,
    pub beep_max_ms: u32,
    /// Treat `unknown` as a person (the call goes on to the bot) rather than as a machine.
    pub unknown_is_human: bool,
    /// How long an uncertain verdict may wait for the words of the bot's speech recognition (the second opinion,
    /// docs/detection.md); 0 turns the second opinion off.
    pub second_opinion_ms: u32,
    /// Report a call-screening service as its own result, `screening` (the call goes on to the bot), instead of
    /// `machine` with cause `SCREENING`.
    pub screening_verdict: bool,
    /// After a person's short greeting judged `human`, keep listening this long: one utterance of `greetingMs` of
    /// voice without a pause, or a beep, turns the verdict into `machine` (a voicemail greeting that opens with
    /// "Hello." and a pause; docs/detection.md, "A person's hello, rechecked"). 0 turns it off.
    pub human_recheck_ms: u32,
}

impl Default for MachineDetectionConfig {
    fn default() -> Self {
        MachineDetectionConfig {
            initial_silence_ms: 2500,
            greeting_ms: 1800,
            after_greeting_silence_ms: 800,
            total_analysis_ms: 5000,
            min_word_length_ms: 100,
            between_words_silence_ms: 50,
            maximum_words: 6,
            maximum_word_length_ms: 5000,
            vad_threshold: 0.5,
            min_voice_level_db: -50.0,
            beep_min_hz: 400,
            beep_max_hz: 2100,
            beep_min_ms: 120,
            beep_max_ms: 2500,
            unknown_is_human: true,
            second_opinion_ms: 4000,
            screening_verdict: false,
            human_recheck_ms: 4000,
        }
    }
}

const FIELDS: [&str; 18] = [
    "initialSilenceMs",
    "greetingMs",
    "afterGreetingSilenceMs",
    "totalAnalysisMs",
    "minWordLengthMs",
    "betweenWordsSilenceMs",
    "maximumWords",
    "maximumWordLengthMs",
    "vadThreshold",
    "minVoiceLevelDb",
    "beepMinHz",
    "beepMaxHz",
    "beepMinMs",
    "beepMaxMs",
    "unknownIsHuman",
    "secondOpinionMs",
    "screeningVerdict",
    "humanRecheckMs",
];

impl MachineDetectionConfig {
    /// Reads and checks the object at `base` (e.g. `request/machineDetectionConfig`); absent fields keep their
    /// defaults.
    pub fn parse(v: &Value, base: &str) -> Result<Self> {
        let o = Obj::new(v, base)?;
        o.only(&FIELDS)?;
        let d = Self::default();
        let ms = |name: &str, min: i64, max: i64, default: u32| -> Result<u32> {
            Ok(o.integer(name, min, max)?.map_or(default, |v| v as u32))
        };
        let c = MachineDetectionConfig {
            initial_silence_ms: ms("initialSilenceMs", 500, 10_000, d.initial_silence_ms)?,
            greeting_ms: ms("greetingMs", 300, 10_000, d.greeting_ms)?,
            after_greeting_silence_ms: ms("afterGreetingSilenceMs", 200, 5_000, d.after_greeting_silence_ms)?,
            total_analysis_ms: ms("totalAnalysisMs", 1_000, 30_000, d.total_analysis_ms)?,
            min_word_length_ms: ms("minWordLengthMs", 20, 1_000, d.min_word_length_ms)?,
            between_words_silence_ms: ms("betweenWordsSilenceMs", 20, 1_000, d.between_words_silence_ms)?,
            maximum_words: ms("maximumWords", 1, 20, d.maximum_words)?,
            maximum_word_length_ms: ms("maximumWordLengthMs", 500, 10_000, d.maximum_word_length_ms)?,
            vad_threshold: o
                .number("vadThreshold", Some(0.05), Some(0.95))?
                .map_or(d.vad_threshold, |v| v as f32),
            min_voice_level_db: o
                .number("minVoiceLevelDb", Some(-80.0), Some(-10.0))?
                .map_or(d.min_voice_level_db, |v| v as f32),
            // The bands do not overlap, so a minimum is always below its maximum (a rule the OpenAPI document can
            // state: docs/api.md).
            beep_min_hz: ms("beepMinHz", 300, 1199, d.beep_min_hz)?,
            beep_max_hz: ms("beepMaxHz", 1200, 2200, d.beep_max_hz)?,
            beep_min_ms: ms("beepMinMs", 60, 499, d.beep_min_ms)?,
            beep_max_ms: ms("beepMaxMs", 500, 10_000, d.beep_max_ms)?,
            unknown_is_human: o.boolean("unknownIsHuman")?.unwrap_or(d.unknown_is_human),
            second_opinion_ms: ms("secondOpinionMs", 0, 10_000, d.second_opinion_ms)?,
            screening_verdict: o.boolean("screeningVerdict")?.unwrap_or(d.screening_verdict),
            human_recheck_ms: ms("humanRecheckMs", 0, 10_000, d.human_recheck_ms)?,
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_overrides_and_errors() {
        let c = MachineDetectionConfig::parse(&json!({}), "machineDetectionConfig").unwrap();
        assert_eq!(c, MachineDetectionConfig::default());
        let c =
            MachineDetectionConfig::parse(&json!({"greetingMs": 2000, "vadThreshold": 0.6}), "m").unwrap();
        assert_eq!((c.greeting_ms, c.vad_threshold), (2000, 0.6));
        let e = |v: Value| {
            MachineDetectionConfig::parse(&v, "machineDetectionConfig")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(json!({"greetingMs": 20})),
            "request/machineDetectionConfig/greetingMs should be >= 300"
        );
        assert_eq!(
            e(json!({"greetingMS": 2000})),
            "request/machineDetectionConfig should NOT have additional properties ('greetingMS')"
        );
        assert_eq!(
            e(json!({"beepMinHz": 1000, "beepMaxHz": 900})),
            "request/machineDetectionConfig/beepMaxHz should be >= 1200"
        );
        assert_eq!(e(json!([])), "request/machineDetectionConfig should be object");
    }
}
