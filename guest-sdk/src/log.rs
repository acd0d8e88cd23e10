//! Logging through the host (`vila2:plugin/log`), which routes it to its `tracing` output.
//! Outside a component (native tests) messages go to stderr.
//!
//! ```
//! vila2_guest::log::info!("kept {} of {}", 3, 4);
//! vila2_guest::log::warn("plain strings work too");
//! ```

pub use crate::bindings::caption_filter::vila2::plugin::log::Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::caption_filter::vila2::plugin::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Logs at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message)
}

/// Logs at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Logs at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Logs at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Logs at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message)
}

#[doc(hidden)]
#[macro_export]
macro_rules! __vila2_log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::log($crate::log::Level::$level, &::std::format!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __vila2_log_trace {
    ($($arg:tt)+) => { $crate::__vila2_log!(Trace, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __vila2_log_debug {
    ($($arg:tt)+) => { $crate::__vila2_log!(Debug, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __vila2_log_info {
    ($($arg:tt)+) => { $crate::__vila2_log!(Info, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __vila2_log_warn {
    ($($arg:tt)+) => { $crate::__vila2_log!(Warn, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __vila2_log_error {
    ($($arg:tt)+) => { $crate::__vila2_log!(Error, $($arg)+) };
}

/// `format!`-style logging at [`Level::Debug`].
pub use crate::__vila2_log_debug as debug;
/// `format!`-style logging at [`Level::Error`].
pub use crate::__vila2_log_error as error;
/// `format!`-style logging at [`Level::Info`].
pub use crate::__vila2_log_info as info;
/// `format!`-style logging at [`Level::Trace`].
pub use crate::__vila2_log_trace as trace;
/// `format!`-style logging at [`Level::Warn`].
pub use crate::__vila2_log_warn as warn;
