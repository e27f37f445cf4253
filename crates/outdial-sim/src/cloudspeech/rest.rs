//! The fakes' REST endpoints: synthesis (Deepgram, Azure, Google, ElevenLabs), recognition of one utterance
//! (Azure, Google) and Google's token endpoint.

use super::{
    AZURE_KEY, DEEPGRAM_KEY, ELEVENLABS_KEY, ELEVENLABS_VOICE, Fault, Shared, tone_for, voiced_frames,
    words_of,
};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::time::Duration;

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn query_has(q: &Option<String>, pair: &str) -> bool {
    q.as_deref().unwrap_or_default().split('&').any(|p| p == pair)
}

fn ulaw(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().map(|&s| outdial_media::g711::ulaw_encode(s)).collect()
}

/// A fault's answer in `provider`'s own error shape, or a hang; None: no fault now.
async fn fault(s: &Shared, provider: &str) -> Option<Response> {
    let f = s.lock().take_fault()?;
    let (status, body) = match (f, provider) {
        (Fault::Hang, _) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return Some(StatusCode::GATEWAY_TIMEOUT.into_response());
        }
        (Fault::Drop, _) => {
            // Headers, a first part, then (once that part is on its way) the connection breaks.
            let parts = futures_util::stream::iter(vec![
                Ok::<_, std::io::Error>(Bytes::from(vec![0xffu8; 400])),
                Err(std::io::Error::other("connection reset")),
            ]);
            let parts = futures_util::StreamExt::then(parts, |p| async move {
                if p.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                p
            });
            return Some((StatusCode::OK, Body::from_stream(parts)).into_response());
        }
        (Fault::Unauthorized, "deepgram") => (401, deepgram_error("INVALID_AUTH", "Invalid credentials.")),
        (Fault::Unauthorized, "azure") => (401, azure_denied()),
        (Fault::Unauthorized, "google") => (401, google_error(401, "UNAUTHENTICATED")),
        (Fault::Unauthorized, _) => (401, eleven_error("invalid_api_key", "Invalid API key")),
        (Fault::ServerError, "deepgram") => (
            500,
            deepgram_error("INTERNAL_SERVER_ERROR", "Internal server error."),
        ),
        (Fault::ServerError, "azure") => (
            502,
            json!({"error": {"code": "BadGateway", "message": "Backend failure"}}),
        ),
        (Fault::ServerError, "google") => (503, google_error(503, "UNAVAILABLE")),
        (Fault::ServerError, _) => (
            500,
            eleven_error("internal_server_error", "Internal server error"),
        ),
    };
    Some(reply(status, body))
}

fn reply(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(body),
    )
        .into_response()
}

pub(crate) fn deepgram_error(code: &str, msg: &str) -> Value {
    json!({"err_code": code, "err_msg": msg, "request_id": uuid::Uuid::new_v4().to_string()})
}
fn azure_denied() -> Value {
    json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}})
}
fn google_error(code: u16, status: &str) -> Value {
    let message = match status {
        "UNAUTHENTICATED" => {
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."
        }
        "UNAVAILABLE" => "The service is currently unavailable.",
        _ => "Request contains an invalid argument.",
    };
    json!({"error": {"code": code, "message": message, "status": status}})
}
fn eleven_error(status: &str, message: &str) -> Value {
    json!({"detail": {"status": status, "message": message}})
}

pub(crate) async fn deepgram_speak(
    State(s): State<Shared>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(r) = fault(&s, "deepgram").await {
        return r;
    }
    if header(&h, "authorization") != format!("Token {DEEPGRAM_KEY}") {
        return reply(401, deepgram_error("INVALID_AUTH", "Invalid credentials."));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return reply(400, deepgram_error("Bad Request", "Invalid JSON body."));
    };
    s.lock().record(
        "deepgram",
        "/v1/speak",
        q.as_deref().unwrap_or_default(),
        v.clone(),
    );
    let Some(text) = v["text"].as_str().filter(|t| !t.is_empty()) else {
        return reply(400, deepgram_error("Bad Request", "Missing text."));
    };
    if !query_has(&q, "encoding=mulaw")
        || !query_has(&q, "sample_rate=8000")
        || !query_has(&q, "container=none")
    {
        return reply(
            400,
            deepgram_error("UNSUPPORTED_AUDIO_FORMAT", "Unsupported audio format."),
        );
    }
    // Aura streams its audio as it is made (chunked), like ElevenLabs.
    paced_ulaw(&tone_for(text))
}

pub(crate) async fn azure_tts(State(s): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = fault(&s, "azure").await {
        return r;
    }
    if header(&h, "ocp-apim-subscription-key") != AZURE_KEY {
        return reply(401, azure_denied());
    }
    let ssml = String::from_utf8_lossy(&body).into_owned();
    s.lock()
        .record("azure", "/cognitiveservices/v1", "", json!({"ssml": ssml}));
    if !header(&h, "content-type").starts_with("application/ssml+xml")
        || !ssml.trim_start().starts_with("<speak")
        || !ssml.contains("<voice name=")
    {
        // Azure answers a body it cannot read with an empty 400.
        return StatusCode::BAD_REQUEST.into_response();
    }
    match header(&h, "x-microsoft-outputformat") {
        "raw-8khz-8bit-mono-mulaw" => ulaw(&tone_for(&words_of(&ssml))).into_response(),
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// How much voiced audio (ms) a 16 kHz WAV holds; None: not a 16 kHz 16-bit mono WAV.
fn voiced_ms(wav: &[u8]) -> Option<u64> {
    if wav.get(0..4)? != b"RIFF" || wav.get(24..28)? != 16_000u32.to_le_bytes() || wav.get(36..40)? != b"data"
    {
        return None;
    }
    let pcm: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    Some(voiced_frames(&pcm).filter(|v| *v).count() as u64 * 20)
}

pub(crate) async fn azure_stt(
    State(s): State<Shared>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(r) = fault(&s, "azure").await {
        return r;
    }
    if header(&h, "ocp-apim-subscription-key") != AZURE_KEY {
        return reply(401, azure_denied());
    }
    let path = "/speech/recognition/conversation/cognitiveservices/v1";
    s.lock().record(
        "azure",
        path,
        q.as_deref().unwrap_or_default(),
        json!({"wavBytes": body.len()}),
    );
    if !q.as_deref().unwrap_or_default().contains("language=") {
        return reply(
            400,
            json!({"error": {"code": "BadRequest", "message": "Language parameter is missing."}}),
        );
    }
    let Some(voiced) = voiced_ms(&body).filter(|_| header(&h, "content-type").starts_with("audio/wav"))
    else {
        return reply(
            400,
            json!({"error": {"code": "BadRequest", "message": "Unsupported audio format."}}),
        );
    };
    let duration = (body.len().saturating_sub(44) / 32) as u64 * 10_000;
    if voiced < 200 {
        return Json(
            json!({"RecognitionStatus": "InitialSilenceTimeout", "Offset": 0, "Duration": duration}),
        )
        .into_response();
    }
    let t = s.lock().transcript.clone();
    let lexical = t.to_lowercase().replace(['.', ',', '?', '!'], "");
    let best =
        json!({"Confidence": 0.93, "Lexical": lexical, "ITN": lexical, "MaskedITN": lexical, "Display": t});
    if query_has(&q, "format=detailed") {
        Json(json!({"RecognitionStatus": "Success", "Offset": 1_000_000, "Duration": duration, "NBest": [best]}))
            .into_response()
    } else {
        Json(json!({"RecognitionStatus": "Success", "DisplayText": t, "Offset": 1_000_000, "Duration": duration}))
            .into_response()
    }
}

pub(crate) async fn google_token(State(s): State<Shared>, body: Bytes) -> Response {
    let (aud, revoked) = {
        let mut i = s.lock();
        i.token_requests += 1;
        let revoked = matches!(i.fault, Some((Fault::Unauthorized, _)));
        (format!("{}/token", i.base), revoked)
    };
    if let Err(refused) = crate::dialogflow::verify_grant(&body, &aud, revoked) {
        return refused;
    }
    let t = format!("ya29.{}", uuid::Uuid::new_v4().simple());
    s.lock().tokens.push(t.clone());
    Json(json!({"access_token": t, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

/// Google's checks shared by both APIs: a token it issued, a JSON body of the schema (`allowed` top fields).
#[allow(clippy::result_large_err)] // A test server's refusal, built once.
fn google_request(
    s: &Shared,
    h: &HeaderMap,
    body: &[u8],
    path: &str,
    allowed: &[&str],
) -> Result<Value, Response> {
    let bearer = header(h, "authorization")
        .strip_prefix("Bearer ")
        .unwrap_or_default();
    if !s.lock().tokens.iter().any(|t| t == bearer) {
        return Err(reply(401, google_error(401, "UNAUTHENTICATED")));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|_| reply(400, google_error(400, "INVALID_ARGUMENT")))?;
    if let Some(extra) = v
        .as_object()
        .and_then(|o| o.keys().find(|k| !allowed.contains(&k.as_str())))
    {
        let message = format!("Invalid JSON payload received. Unknown name \"{extra}\": Cannot find field.");
        return Err(reply(
            400,
            json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}),
        ));
    }
    s.lock().record("google", path, "", v.clone());
    Ok(v)
}

pub(crate) async fn google_tts(State(s): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = fault(&s, "google").await {
        return r;
    }
    let v = match google_request(
        &s,
        &h,
        &body,
        "/v1/text:synthesize",
        &["input", "voice", "audioConfig"],
    ) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let text = v["input"]["text"]
        .as_str()
        .or(v["input"]["ssml"].as_str())
        .unwrap_or_default();
    let config = &v["audioConfig"];
    if text.is_empty()
        || v["voice"]["languageCode"].as_str().is_none()
        || config["audioEncoding"] != "MULAW"
        || config["sampleRateHertz"] != 8000
    {
        return reply(400, google_error(400, "INVALID_ARGUMENT"));
    }
    // MULAW comes in a WAV (format 7).
    let data = ulaw(&tone_for(&words_of(text)));
    let mut wav = Vec::with_capacity(44 + data.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for (v, n) in [(16u32, 4), (7, 2), (1, 2), (8000, 4), (8000, 4), (1, 2), (8, 2)] {
        wav.extend_from_slice(&v.to_le_bytes()[..n]);
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    Json(json!({"audioContent": base64::engine::general_purpose::STANDARD.encode(wav)})).into_response()
}

pub(crate) async fn google_stt(State(s): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = fault(&s, "google").await {
        return r;
    }
    let v = match google_request(&s, &h, &body, "/v1/speech:recognize", &["config", "audio"]) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let c = &v["config"];
    let audio = v["audio"]["content"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    let (Some(audio), true) = (
        audio,
        c["encoding"] == "LINEAR16" && c["sampleRateHertz"] == 16000 && c["languageCode"].is_string(),
    ) else {
        return reply(400, google_error(400, "INVALID_ARGUMENT"));
    };
    let pcm: Vec<i16> = audio
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let request_id = uuid::Uuid::new_v4().as_u64_pair().0.to_string();
    let billed = format!("{}s", pcm.len().div_ceil(16_000));
    if voiced_frames(&pcm).filter(|v| *v).count() < 10 {
        return Json(json!({"totalBilledTime": billed, "requestId": request_id})).into_response();
    }
    let t = s.lock().transcript.clone();
    Json(
        json!({"results": [{"alternatives": [{"transcript": t, "confidence": 0.92}],
                              "resultEndTime": format!("{:.3}s", pcm.len() as f64 / 16_000.0),
                              "languageCode": c["languageCode"].as_str().unwrap_or_default().to_lowercase()}],
                "totalBilledTime": billed, "requestId": request_id}),
    )
    .into_response()
}

pub(crate) async fn elevenlabs(
    State(s): State<Shared>,
    Path(voice): Path<String>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(r) = fault(&s, "elevenlabs").await {
        return r;
    }
    if header(&h, "xi-api-key") != ELEVENLABS_KEY {
        return reply(401, eleven_error("invalid_api_key", "Invalid API key"));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return reply(400, eleven_error("invalid_json", "Invalid JSON"));
    };
    s.lock().record(
        "elevenlabs",
        &format!("/v1/text-to-speech/{voice}/stream"),
        q.as_deref().unwrap_or_default(),
        v.clone(),
    );
    if voice != ELEVENLABS_VOICE {
        let message = format!("A voice with the voice_id {voice} was not found.");
        return reply(404, eleven_error("voice_not_found", &message));
    }
    let Some(text) = v["text"].as_str().filter(|t| !t.is_empty()) else {
        return reply(
            422,
            json!({"detail": [{"type": "missing", "loc": ["body", "text"], "msg": "Field required"}]}),
        );
    };
    if !query_has(&q, "output_format=ulaw_8000") {
        return reply(
            400,
            eleven_error("invalid_output_format", "Unsupported output format"),
        );
    }
    paced_ulaw(&tone_for(text))
}

/// µ-law audio streamed in 100 ms parts as it is made: 25 ms to make each (4 times faster than it plays, a fast
/// voice).
fn paced_ulaw(pcm: &[i16]) -> Response {
    let audio = ulaw(pcm);
    let parts: Vec<Result<Bytes, std::io::Error>> =
        audio.chunks(800).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let paced = futures_util::StreamExt::then(futures_util::stream::iter(parts), |p| async move {
        tokio::time::sleep(Duration::from_millis(25)).await;
        p
    });
    ([("content-type", "audio/basic")], Body::from_stream(paced)).into_response()
}
