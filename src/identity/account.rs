//! Who and where, when identity.json does not say: the user from the
//! environment or the account, the machine from the host name.

use super::*;

/// `USER`, `USERNAME`, else the account this process runs as (containers,
/// cron and services often set neither variable).
pub(super) fn default_user() -> Option<String> {
    env_var("USER")
        .or_else(|| env_var("USERNAME"))
        .or_else(account_name)
        .filter(|u| name_problem(u).is_none())
}

/// The name of the account this process runs as, as `whoami` prints it.
#[cfg(unix)]
pub(super) fn account_name() -> Option<String> {
    // SAFETY: getpwuid_r writes into the buffers we own; the result points
    // into `buf`, which outlives its use here.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_string_lossy()
            .into_owned();
        (!name.is_empty()).then_some(name)
    }
}

/// The name of the account this process runs as (GetUserNameW).
#[cfg(windows)]
pub(super) fn account_name() -> Option<String> {
    #[link(name = "advapi32")]
    unsafe extern "system" {
        fn GetUserNameW(buffer: *mut u16, size: *mut u32) -> i32;
    }
    let mut buf = [0u16; 257];
    let mut len = buf.len() as u32;
    // SAFETY: the buffer and its length are ours; on success `len` counts
    // the characters written, with the terminating zero.
    let ok = unsafe { GetUserNameW(buf.as_mut_ptr(), &mut len) };
    if ok == 0 || len == 0 {
        return None;
    }
    let name = String::from_utf16_lossy(&buf[..(len as usize).saturating_sub(1)]);
    (!name.is_empty()).then_some(name)
}

#[cfg(not(any(unix, windows)))]
pub(super) fn account_name() -> Option<String> {
    None
}

pub(super) fn default_machine() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let host = host.split('.').next().unwrap_or("").trim().to_string();
    if crate::model::name_problem(&host).is_some() {
        "LOCALHOST".into()
    } else {
        host.to_ascii_uppercase()
    }
}
