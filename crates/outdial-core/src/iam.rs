//! Authorization: roles, scopes and the allow/deny rule of docs/api.md, "Roles and scopes".

use crate::application::{Effect, Policy, Role};
use crate::bot::Bot;

/// One entry of a comma-separated scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeEntry {
    All,
    Name(String),
    Tag(String),
    /// `oauth=<value>`: the application may be granted the OAuth scope `<value>` at `/oauth/token` (the legacy
    /// `dialoutAuthScope` model, docs/security.md). It names no bot.
    OAuth(String),
    /// `trunk=<name>`: in a `VAIC/BOTS/WRITE` policy, the application may put the bots it writes on this trunk.
    /// It names no bot.
    Trunk(String),
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
            } else if let Some(value) = e.strip_prefix("oauth=") {
                if value.is_empty() || value.contains(char::is_whitespace) {
                    return Err("should not have an empty 'oauth=' entry or one with spaces".into());
                }
                ScopeEntry::OAuth(value.to_string())
            } else if let Some(trunk) = e.strip_prefix("trunk=") {
                if trunk.is_empty() {
                    return Err("should not have an empty 'trunk=' entry".into());
                }
                ScopeEntry::Trunk(trunk.to_string())
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
            ScopeEntry::OAuth(_) | ScopeEntry::Trunk(_) => false,
        })
    }

    /// Whether the scope lets its holder be granted the OAuth scope `value` (`oauth=<value>` or `*`).
    pub fn grants_oauth(&self, value: &str) -> bool {
        self.0.iter().any(|e| match e {
            ScopeEntry::All => true,
            ScopeEntry::OAuth(v) => v == value,
            _ => false,
        })
    }

    /// Whether the scope lets its holder put bots on trunk `name` (`trunk=<name>` or `*`).
    pub fn grants_trunk(&self, name: &str) -> bool {
        self.0.iter().any(|e| match e {
            ScopeEntry::All => true,
            ScopeEntry::Trunk(t) => t == name,
            _ => false,
        })
    }

    /// Whether the scope would cover a bot of this name whatever its tag (`*` or the name itself).
    pub fn covers_name(&self, name: &str) -> bool {
        self.0.iter().any(|e| match e {
            ScopeEntry::All => true,
            ScopeEntry::Name(n) => n == name,
            ScopeEntry::Tag(_) | ScopeEntry::OAuth(_) | ScopeEntry::Trunk(_) => false,
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

/// Some allow policy of `role` (or `OUTDIAL/ADMIN`) has a scope that `matches`, and no deny policy of those
/// roles does: a deny always wins.
fn decide(policies: &[Policy], role: Role, matches: impl Fn(&Scope) -> bool) -> bool {
    let relevant = |p: &&Policy| p.role == role || p.role == Role::Admin;
    let (mut allowed, mut denied) = (false, false);
    for p in policies.iter().filter(relevant) {
        if matches(&scope_of(p)) {
            match p.effect {
                Effect::Allow => allowed = true,
                Effect::Deny => denied = true,
            }
        }
    }
    allowed && !denied
}

/// Whether the policies grant `role` on `bot`: some allow policy covers it and no deny policy does.
pub fn allows_bot(policies: &[Policy], role: Role, bot: &Bot) -> bool {
    decide(policies, role, |s| s.covers(bot))
}

/// For a bot that does not exist: may the caller learn that (404), or must it get 403?
/// Only when an allow policy would cover the name whatever the bot's tag, and no deny policy covers it.
pub fn may_know_missing(policies: &[Policy], role: Role, name: &str) -> bool {
    decide(policies, role, |s| s.covers_name(name))
}

/// Whether the application may put bots on trunk `name` (docs/security.md): `trunk=<name>` or `*` in a
/// `VAIC/BOTS/WRITE` (or `OUTDIAL/ADMIN`) policy.
pub fn may_use_trunk(policies: &[Policy], name: &str) -> bool {
    decide(policies, Role::BotsWrite, |s| s.grants_trunk(name))
}

/// Whether the application may be granted the OAuth scope `value` at `/oauth/token` (docs/security.md):
/// `oauth=<value>` or `*` in a `VAIC/BOTS/DIALOUT` (or `OUTDIAL/ADMIN`) policy.
pub fn may_hold_oauth_scope(policies: &[Policy], value: &str) -> bool {
    decide(policies, Role::Dialout, |s| s.grants_oauth(value))
}

/// The legacy model: a bot with `dialoutAuthScope` may be dialled with a bearer token granted that scope, while
/// the application may still hold it, and unless a deny policy of role `VAIC/BOTS/DIALOUT` covers the bot (a deny
/// always wins).
pub fn legacy_scope_allows(policies: &[Policy], bot: &Bot, granted: &[String]) -> bool {
    let denied = policies.iter().any(|p| {
        (p.role == Role::Dialout || p.role == Role::Admin)
            && p.effect == Effect::Deny
            && scope_of(p).covers(bot)
    });
    !denied
        && bot
            .dialout_auth_scope
            .as_deref()
            .is_some_and(|s| granted.iter().any(|g| g == s) && may_hold_oauth_scope(policies, s))
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
    fn oauth_scopes_need_a_policy_and_deny_wins() {
        let mut b = bot("Bot1", Some("sales"));
        b.dialout_auth_scope = Some("dial:bot1".into());
        let granted = ["dial:bot1".to_string()];
        let holder = [pol(Role::Dialout, "oauth=dial:bot1", Effect::Allow)];
        assert!(may_hold_oauth_scope(&holder, "dial:bot1"));
        assert!(!may_hold_oauth_scope(&holder, "dial:bot2"));
        assert!(legacy_scope_allows(&holder, &b, &granted));
        assert!(!allows_bot(&holder, Role::Dialout, &b), "oauth= names no bot");
        let reader = [pol(Role::CallsRead, "*", Effect::Allow)];
        assert!(!may_hold_oauth_scope(&reader, "dial:bot1"));
        assert!(
            !legacy_scope_allows(&reader, &b, &granted),
            "a token granted earlier stops working"
        );
        let denied = [
            pol(Role::Dialout, "oauth=dial:bot1", Effect::Allow),
            pol(Role::Dialout, "tag=sales", Effect::Deny),
        ];
        assert!(!legacy_scope_allows(&denied, &b, &granted));
        let denied_scope = [
            pol(Role::Dialout, "*", Effect::Allow),
            pol(Role::Dialout, "oauth=dial:bot1", Effect::Deny),
        ];
        assert!(!may_hold_oauth_scope(&denied_scope, "dial:bot1"));
        assert_eq!(
            Scope::parse("oauth=").unwrap_err(),
            "should not have an empty 'oauth=' entry or one with spaces"
        );
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
