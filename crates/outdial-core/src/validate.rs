//! A small reader over JSON objects that produces errors in the style dialers already log
//! (`request/answerTimeoutSec should be <= 300`), the style of the product outdial is compatible with.

use serde_json::{Map, Value};
use std::fmt;

/// One validation failure: where (a JSON pointer below the request, without the leading `/`) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// `""` for the object itself, else `field` or `field/0`.
    pub path: String,
    /// e.g. `should be <= 300`.
    pub message: String,
}

impl ValidationError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error with `prefix` put in front of its path (for nested objects).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = join(prefix, &self.path);
        self
    }

    /// The error as a configuration-file problem: `bots[0].dialoutMaxConcurrentCalls: should be <= 300`.
    pub fn config_key(&self, section: &str) -> String {
        let key = self.path.replace('/', ".");
        if key.is_empty() {
            format!("{section}: {}", self.message)
        } else {
            format!("{section}.{key}: {}", self.message)
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "request {}", self.message)
        } else {
            write!(f, "request/{} {}", self.path, self.message)
        }
    }
}

pub type Result<T> = std::result::Result<T, ValidationError>;

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}/{path}"),
    }
}

/// Reads the fields of one JSON object.
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    base: String,
}

impl<'a> Obj<'a> {
    /// `value` must be an object; `base` is its path (`""` for the request itself).
    pub fn new(value: &'a Value, base: &str) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                base: base.to_string(),
            }),
            _ => Err(ValidationError::new(base, "should be object")),
        }
    }

    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    fn path(&self, name: &str) -> String {
        join(&self.base, name)
    }

    fn err(&self, name: &str, message: impl Into<String>) -> ValidationError {
        ValidationError::new(self.path(name), message)
    }

    /// Rejects properties outside `allowed` (a typo must not silently change a call).
    pub fn only(&self, allowed: &[&str]) -> Result<()> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(extra) => Err(ValidationError::new(
                self.base.clone(),
                format!("should NOT have additional properties ('{extra}')"),
            )),
            None => Ok(()),
        }
    }

    pub fn required(&self, names: &[&str]) -> Result<()> {
        match names.iter().find(|n| !self.map.contains_key(**n)) {
            Some(missing) => Err(ValidationError::new(
                self.base.clone(),
                format!("should have required property '{missing}'"),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// A string of `min..=max` characters.
    pub fn string(&self, name: &str, min: usize, max: usize) -> Result<Option<&'a str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n < min {
                    Err(self.err(name, format!("should NOT be shorter than {min} characters")))
                } else if n > max {
                    Err(self.err(name, format!("should NOT be longer than {max} characters")))
                } else {
                    Ok(Some(s))
                }
            }
            Some(_) => Err(self.err(name, "should be string")),
        }
    }

    /// A string without control characters.
    pub fn text(&self, name: &str, min: usize, max: usize) -> Result<Option<&'a str>> {
        let s = self.string(name, min, max)?;
        if let Some(s) = s
            && s.chars().any(char::is_control)
        {
            return Err(self.err(name, "should NOT contain control characters"));
        }
        Ok(s)
    }

    pub fn number(&self, name: &str, min: Option<f64>, max: Option<f64>) -> Result<Option<f64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let v = n.as_f64().unwrap_or(f64::NAN);
                if !v.is_finite() {
                    return Err(self.err(name, "should be number"));
                }
                if let Some(min) = min
                    && v < min
                {
                    return Err(self.err(name, format!("should be >= {}", fmt_num(min))));
                }
                if let Some(max) = max
                    && v > max
                {
                    return Err(self.err(name, format!("should be <= {}", fmt_num(max))));
                }
                Ok(Some(v))
            }
            Some(_) => Err(self.err(name, "should be number")),
        }
    }

    pub fn integer(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let v = match (n.as_i64(), n.as_f64()) {
                    (Some(v), _) => v,
                    (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
                    _ => return Err(self.err(name, "should be integer")),
                };
                if v < min {
                    Err(self.err(name, format!("should be >= {min}")))
                } else if v > max {
                    Err(self.err(name, format!("should be <= {max}")))
                } else {
                    Ok(Some(v))
                }
            }
            Some(_) => Err(self.err(name, "should be integer")),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.err(name, "should be boolean")),
        }
    }

    /// One of `allowed`.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<&'a str>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(Some(s)),
            Some(_) => Err(self.err(
                name,
                format!(
                    "should be equal to one of the allowed values: {}",
                    allowed.join(", ")
                ),
            )),
        }
    }

    /// An array of strings, each checked by `item` (which returns a message on failure).
    pub fn strings(
        &self,
        name: &str,
        max_items: usize,
        item: impl Fn(&str) -> std::result::Result<(), String>,
    ) -> Result<Option<Vec<String>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                if items.len() > max_items {
                    return Err(self.err(name, format!("should NOT have more than {max_items} items")));
                }
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.iter().enumerate() {
                    let path = format!("{name}/{i}");
                    let Value::String(s) = v else {
                        return Err(self.err(&path, "should be string"));
                    };
                    item(s).map_err(|m| self.err(&path, m))?;
                    out.push(s.clone());
                }
                Ok(Some(out))
            }
            Some(_) => Err(self.err(name, "should be array")),
        }
    }

    /// The raw value of a property, for nested readers.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        self.get(name)
    }

    /// The path of a property, for errors raised by the caller.
    pub fn error(&self, name: &str, message: impl Into<String>) -> ValidationError {
        self.err(name, message)
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// True for a name of `[A-Za-z0-9_.-]{1,64}`: bot and trunk names.
pub fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// An absolute URL with one of `schemes`.
pub fn check_url(s: &str, schemes: &[&str]) -> std::result::Result<url::Url, String> {
    let u = url::Url::parse(s).map_err(|_| format!("should be an absolute {} URL", schemes.join(" or ")))?;
    if !schemes.contains(&u.scheme()) || u.host_str().is_none_or(str::is_empty) {
        return Err(format!("should be an absolute {} URL", schemes.join(" or ")));
    }
    // docs/security.md: secrets go in write-only fields (token, notifySecret), never in a URL that is shown.
    if !u.username().is_empty() || u.password().is_some() {
        return Err("should not contain credentials (user:password@)".into());
    }
    Ok(u)
}

/// Applies an RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_follow_the_dialer_style() {
        let v = json!({"a": 301, "b": "x", "c": [1], "d": "zz"});
        let o = Obj::new(&v, "").unwrap();
        assert_eq!(
            o.number("a", Some(1.0), Some(300.0)).unwrap_err().to_string(),
            "request/a should be <= 300"
        );
        assert_eq!(
            o.number("b", None, None).unwrap_err().to_string(),
            "request/b should be number"
        );
        assert_eq!(
            o.strings("c", 5, |_| Ok(())).unwrap_err().to_string(),
            "request/c/0 should be string"
        );
        assert_eq!(
            o.one_of("d", &["x", "y"]).unwrap_err().to_string(),
            "request/d should be equal to one of the allowed values: x, y"
        );
        assert_eq!(
            o.only(&["a", "b", "c"]).unwrap_err().to_string(),
            "request should NOT have additional properties ('d')"
        );
        assert_eq!(
            o.required(&["a", "e"]).unwrap_err().to_string(),
            "request should have required property 'e'"
        );
        assert_eq!(
            o.integer("a", 0, 300).unwrap_err().config_key("bots[0]"),
            "bots[0].a: should be <= 300"
        );
    }

    #[test]
    fn fractional_bounds_print_as_given() {
        let v = json!({"r": -0.5});
        let o = Obj::new(&v, "").unwrap();
        assert_eq!(
            o.number("r", Some(0.0), None).unwrap_err().to_string(),
            "request/r should be >= 0"
        );
        assert_eq!(
            o.integer("r", 0, 3).unwrap_err().to_string(),
            "request/r should be integer"
        );
    }

    #[test]
    fn merge_patch_follows_rfc7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}
