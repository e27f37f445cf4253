//! What a bot asks the gateway to do, whatever its framework (docs/bots.md). Every connector translates its
//! framework's messages into [`BotAction`] and [`ActivitySettings`]; nothing downstream sees a framework's JSON.

/// One action of a bot, in the order the bot sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum BotAction {
    /// Say this (SSML when it starts with `<speak`).
    Say(String),
    /// Hang up, with the bot's reason if it gave one.
    Hangup(Option<String>),
    /// Blind transfer to a `tel:`/`sip:` target.
    Transfer {
        target: String,
        reason: Option<String>,
        /// `transferSipHeaders`: added to the REFER.
        headers: Vec<(String, String)>,
    },
    /// Send these DTMF digits.
    SendDtmf(String),
    /// Play the audio at this URL (`playUrlMediaFormat` e.g. `wav/lpcm16`, `raw/mulaw`).
    PlayUrl { url: String, format: Option<String> },
    /// Start listening to the person (and sending their words), even while a prompt plays.
    StartRecognition,
    /// Stop listening; what is being said is still delivered.
    StopRecognition,
    /// Drop the prompts not yet played, and stop the one playing.
    AbortPrompts,
    /// Only settings (`config` event): nothing to do besides applying them.
    Config,
    /// An event the gateway does not act on: its name, kept in the timeline.
    Unknown(String),
}

impl BotAction {
    /// Actions about listening and prompts take effect at once; the others wait their turn behind the
    /// messages before them (docs/bots.md, "Order").
    pub fn is_immediate(&self) -> bool {
        matches!(
            self,
            BotAction::StartRecognition | BotAction::StopRecognition | BotAction::AbortPrompts
        )
    }
}

/// The settings an activity carries (`sessionParams` and `activityParams`, docs/bots.md).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivitySettings {
    pub barge_in: Option<bool>,
    /// `userNoInputTimeoutMS`: silence this long after a prompt → `noUserInput` event; 0 switches it off.
    pub no_input_timeout_ms: Option<u64>,
    pub language: Option<String>,
    pub bot_operation_result: Option<String>,
    pub bot_operation_data: Option<String>,
}

impl ActivitySettings {
    /// Reads the settings of merged `sessionParams` / `activityParams`.
    pub fn from_params(params: &serde_json::Map<String, serde_json::Value>) -> Self {
        let text = |k: &str| params.get(k).and_then(|v| v.as_str()).map(str::to_string);
        ActivitySettings {
            barge_in: params.get("bargeIn").and_then(serde_json::Value::as_bool),
            no_input_timeout_ms: params
                .get("userNoInputTimeoutMS")
                .and_then(serde_json::Value::as_u64),
            language: text("language"),
            bot_operation_result: text("botOperationResult"),
            bot_operation_data: text("botOperationData"),
        }
    }
}
