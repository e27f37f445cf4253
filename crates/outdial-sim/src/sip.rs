//! Just enough SIP text handling for a UAS on UDP: parse a message, build responses and a BYE.

/// A parsed SIP message (request or response).
#[derive(Debug, Clone)]
pub struct Message {
    /// `INVITE sip:… SIP/2.0` or `SIP/2.0 200 OK`.
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn canonical(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "v" => "via".into(),
        "f" => "from".into(),
        "t" => "to".into(),
        "i" => "call-id".into(),
        "m" => "contact".into(),
        "l" => "content-length".into(),
        "c" => "content-type".into(),
        other => other.into(),
    }
}

impl Message {
    pub fn parse(buf: &[u8]) -> Option<Message> {
        let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&buf[..split]).ok()?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?.to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                headers.last_mut()?.1.push_str(line.trim());
                continue;
            }
            let (n, v) = line.split_once(':')?;
            headers.push((canonical(n.trim()), v.trim().to_string()));
        }
        let body_start = split + 4;
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(buf.len() - body_start);
        let body = buf.get(body_start..body_start + len)?.to_vec();
        Some(Message { start, headers, body })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = canonical(name);
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        let name = canonical(name);
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request method, None for a response.
    pub fn method(&self) -> Option<&str> {
        let first = self.start.split(' ').next()?;
        (first != "SIP/2.0").then_some(first)
    }

    /// The Request-URI's user part.
    pub fn request_user(&self) -> Option<&str> {
        let uri = self.start.split(' ').nth(1)?;
        let rest = uri.strip_prefix("sip:").or_else(|| uri.strip_prefix("sips:"))?;
        rest.split_once('@').map(|(u, _)| u)
    }

    pub fn cseq(&self) -> Option<(u32, &str)> {
        let (n, m) = self.header("cseq")?.split_once(' ')?;
        Some((n.trim().parse().ok()?, m.trim()))
    }

    /// The URI inside a name-addr header value (`"x" <sip:…>;tag=…` → `sip:…`).
    pub fn uri_of(value: &str) -> &str {
        match (value.find('<'), value.find('>')) {
            (Some(a), Some(b)) if a < b => &value[a + 1..b],
            _ => value.split(';').next().unwrap_or(value).trim(),
        }
    }
}

/// A response to `req` with this status, our To tag, and optional extra headers and body.
pub fn response(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: &str,
    extra: &[(&str, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.all("via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    for v in req.all("record-route") {
        s.push_str(&format!("Record-Route: {v}\r\n"));
    }
    s.push_str(&format!("From: {}\r\n", req.header("from").unwrap_or_default()));
    let to = req.header("to").unwrap_or_default();
    if code > 100 && !to.contains("tag=") {
        s.push_str(&format!("To: {to};tag={to_tag}\r\n"));
    } else {
        s.push_str(&format!("To: {to}\r\n"));
    }
    s.push_str(&format!(
        "Call-ID: {}\r\n",
        req.header("call-id").unwrap_or_default()
    ));
    s.push_str(&format!("CSeq: {}\r\n", req.header("cseq").unwrap_or_default()));
    for (n, v) in extra {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}
