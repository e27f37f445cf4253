//! The detector's parameters: the bot's `machineDetectionConfig` (defined and validated in outdial-core).

pub use outdial_core::detection::MachineDetectionConfig as Config;
pub use outdial_core::validate::ValidationError as ConfigError;
