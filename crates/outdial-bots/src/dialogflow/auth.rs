//! Google service-account authorisation for Dialogflow: the gateway's one implementation
//! ([`outdial_net::google`]), its failures said as the bots' errors.

use crate::BotError;
pub use outdial_net::google::{AuthError, GoogleTokens, SCOPE, ServiceAccount};

impl From<AuthError> for BotError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Policy(r) => BotError::Policy(r),
            AuthError::Unavailable(s) => BotError::Unreachable(s),
            AuthError::Protocol(_) => BotError::Protocol(e.to_string()),
            AuthError::BadKey(_) | AuthError::Refused { .. } => BotError::Rejected(e.to_string()),
        }
    }
}
