//! Bytes as the system bus sends them to berth's systemd driver -> its D-Bus client
//! (runtime/src/cgroups/systemd/bus.rs through `berth::fuzzing::dbus_messages`): split into
//! messages, each one's header fields, an error's text, a job's path, a JobRemoved signal.
//! Input: the raw bytes after authentication (one or more messages, either byte order).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = berth::fuzzing::dbus_messages(data);
});
