//! Authorization: roles, scopes and the allow/deny rule of docs/api.md, "Roles and scopes".

use crate::application::{Effect, Policy, Role};
use crate::bot::Bot;

/// One entry of a comma-separated scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeEntry {
    All,
    Name(String),
    Tag(String),
}

/// A parsed scope: `*`, `bot1`, `name=bot1`, `tag=sales`, or a comma list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(pub Vec<ScopeEntry>);

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, String> {
        let mut entries = Vec::new();
        for raw in s.split(',') {
            let e = raw.trim();
            if e.is_empty() {
                return Err("should not have empty entries".into());
            }
            let entry = if e == "*" {
                ScopeEntry::All
            } else if let Some(tag) = e.strip_prefix("tag=") {
                if tag.is_empty() {
                    return Err("should not have an empty 'tag=' entry".into());
                }
                ScopeEntry::Tag(tag.to_string())
            } else if let Some(name) = e.strip_prefix("name=") {
                if name.is_empty() {
                    return Err("should not have an empty 'name=' entry".into());
                }
                ScopeEntry::Name(name.to_string())
            } else {
                ScopeEntry::Name(e.to_string())
            };
            entries.push(entry);
        }
        Ok(Scope(entries))
    }

    /// Whether the scope covers this bot (by name, by tag or `*`).
    pub fn covers(&self, bot: &Bot) -> bool {
        self.0.iter().any(|e| match e {
            ScopeEntry::All => true,
            ScopeEntry::Name(n) => *n == bot.name,
            ScopeEntry::Tag(t) => bot.authorization_tag.as_deref() == Some(t.as_str()),
        })
    }

    /// Whether the scope would cover a bot of this name whatever its tag (`*` or the name itself).
    pub fn covers_name(&self, name: &str) -> bool {
        self.0.iter().any(|e| match e {
            ScopeEntry::All => true,
            ScopeEntry::Name(n) => n == name,
            ScopeEntry::Tag(_) => false,
        })
    }
}

fn scope_of(p: &Policy) -> Scope {
    // Policies are validated on the way in; an unparsable one (from an old store) covers nothing.
    Scope::parse(&p.scope).unwrap_or(Scope(Vec::new()))
}

/// Whether the policies grant `role` over every bot (`*`), as needed for objects that are not bots.
/// `OUTDIAL/ADMIN` grants every role.
pub fn allows_global(policies: &[Policy], role: Role) -> bool {
    let relevant = |p: &&Policy| p.role == role || p.role == Role::Admin;
    let allowed = policies
        .iter()
        .filter(relevant)
        .any(|p| p.effect == Effect::Allow && scope_of(p).0.contains(&ScopeEntry::All));
    let denied = policies.iter().filter(relevant).any(|p| p.effect == Effect::Deny);
    allowed && !denied
}

/// Whether the policies grant `role` on `bot`: some allow policy covers it and no deny policy does.
pub fn allows_bot(policies: &[Policy], role: Role, bot: &Bot) -> bool {
    let relevant = |p: &&Policy| p.role == role || p.role == Role::Admin;
    let allowed = policies
        .iter()
        .filter(relevant)
        .any(|p| p.effect == Effect::Allow && scope_of(p).covers(bot));
    let denied = policies
        .iter()
        .filter(relevant)
        .any(|p| p.effect == Effect::Deny && scope_of(p).covers(bot));
    allowed && !denied
}

/// For a bot that does not exist: may the caller learn that (404), or must it get 403?
/// Only when an allow policy would cover the name whatever the bot's tag, and no deny policy covers it.
pub fn may_know_missing(policies: &[Policy], role: Role, name: &str) -> bool {
    let relevant = |p: &&Policy| p.role == role || p.role == Role::Admin;
    let allowed = policies
        .iter()
        .filter(relevant)
        .any(|p| p.effect == Effect::Allow && scope_of(p).covers_name(name));
    let denied = policies
        .iter()
        .filter(relevant)
        .any(|p| p.effect == Effect::Deny && scope_of(p).covers_name(name));
    allowed && !denied
}

/// The legacy model: a bot with `dialoutAuthScope` may be dialled by a bearer token granted that scope.
pub fn legacy_scope_allows(bot: &Bot, granted: &[String]) -> bool {
    bot.dialout_auth_scope
        .as_deref()
        .is_some_and(|s| granted.iter().any(|g| g == s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bot(name: &str, tag: Option<&str>) -> Bot {
        let mut v = json!({"name": name, "botUrl": "http://127.0.0.1:1/bot"});
        if let Some(t) = tag {
            v["authorizationTag"] = json!(t);
        }
        Bot::parse(&v).unwrap()
    }

    fn pol(role: Role, scope: &str, effect: Effect) -> Policy {
        Policy {
            role,
            scope: scope.into(),
            effect,
        }
    }

    #[test]
    fn scopes_match_names_tags_and_star() {
        let b = bot("Bot1", Some("sales"));
        let allow = |s: &str| allows_bot(&[pol(Role::Dialout, s, Effect::Allow)], Role::Dialout, &b);
        assert!(allow("*"));
        assert!(allow("Bot1"));
        assert!(allow("name=Bot1"));
        assert!(allow("tag=sales"));
        assert!(allow("other, tag=sales"));
        assert!(!allow("bot1"), "names are case-sensitive");
        assert!(!allow("tag=support"));
    }

    #[test]
    fn deny_wins_and_roles_are_separate() {
        let b = bot("Bot1", Some("sales"));
        let p = [
            pol(Role::Dialout, "*", Effect::Allow),
            pol(Role::Dialout, "tag=sales", Effect::Deny),
        ];
        assert!(!allows_bot(&p, Role::Dialout, &b));
        assert!(allows_bot(&p, Role::Dialout, &bot("Bot2", None)));
        assert!(!allows_bot(
            &[pol(Role::BotsRead, "*", Effect::Allow)],
            Role::Dialout,
            &b
        ));
        assert!(allows_bot(
            &[pol(Role::Admin, "*", Effect::Allow)],
            Role::Dialout,
            &b
        ));
    }

    #[test]
    fn missing_bots_are_revealed_only_to_name_scopes() {
        let by_tag = [pol(Role::Dialout, "tag=sales", Effect::Allow)];
        assert!(!may_know_missing(&by_tag, Role::Dialout, "Ghost"));
        assert!(may_know_missing(
            &[pol(Role::Dialout, "*", Effect::Allow)],
            Role::Dialout,
            "Ghost"
        ));
        assert!(may_know_missing(
            &[pol(Role::Dialout, "Ghost", Effect::Allow)],
            Role::Dialout,
            "Ghost"
        ));
        let denied = [
            pol(Role::Dialout, "*", Effect::Allow),
            pol(Role::Dialout, "Ghost", Effect::Deny),
        ];
        assert!(!may_know_missing(&denied, Role::Dialout, "Ghost"));
    }

    #[test]
    fn global_needs_star_and_no_deny() {
        assert!(allows_global(
            &[pol(Role::Admin, "*", Effect::Allow)],
            Role::Admin
        ));
        assert!(!allows_global(
            &[pol(Role::Admin, "Bot1", Effect::Allow)],
            Role::Admin
        ));
        assert!(!allows_global(
            &[pol(Role::Dialout, "*", Effect::Allow)],
            Role::Admin
        ));
    }
}
