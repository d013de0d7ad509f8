//! Users and groups looked up through NSS (`/etc/passwd`, LDAP, whatever `nsswitch.conf` says),
//! with the reentrant libc calls: for `--cgi-user`/`--cgi-group` here, and for the daemon's own
//! `--user`/`--group`/`--socket-owner`, which is why the module is public.
//!
//! Each call is a plain libc function whose only preconditions are valid pointers, which the
//! safe wrappers here guarantee.
#![allow(unsafe_code)] // reason: getpwnam_r/getpwuid_r/getgrnam_r have no std equivalent; each block has a SAFETY note

use std::ffi::CString;
use std::io;
use std::ptr;

/// A user database entry: the ids, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserEntry {
    /// The user id.
    pub uid: u32,
    /// The user's primary group id.
    pub gid: u32,
}

/// Largest buffer we offer the `*_r` calls before giving up on ERANGE.
const MAX_NSS_BUFFER: usize = 1 << 20;

/// Looks user `name` up. `Ok(None)`: no such user. A name with a NUL byte is `InvalidInput`.
pub fn user_by_name(name: &str) -> io::Result<Option<UserEntry>> {
    let cname = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    passwd_lookup(|pwd, buf, len, found| {
        // SAFETY: every pointer is valid for the call: a NUL-terminated name, a writable struct,
        // a writable buffer of exactly `len` bytes, and a writable result pointer (all provided
        // by `passwd_lookup`, which keeps them alive across the call).
        unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf, len, found) }
    })
}

/// Looks user id `uid` up (for its primary group). `Ok(None)`: the database has no entry.
pub fn user_by_uid(uid: u32) -> io::Result<Option<UserEntry>> {
    passwd_lookup(|pwd, buf, len, found| {
        // SAFETY: as in `user_by_name`, with a plain integer instead of a name.
        unsafe { libc::getpwuid_r(uid, pwd, buf, len, found) }
    })
}

/// Runs one `getpw*_r` call with a growing buffer.
fn passwd_lookup(
    mut call: impl FnMut(
        *mut libc::passwd,
        *mut libc::c_char,
        usize,
        *mut *mut libc::passwd,
    ) -> libc::c_int,
) -> io::Result<Option<UserEntry>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: passwd is a plain C struct; all-zero is a valid value (null pointers, zeros).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = ptr::null_mut();
        let rc = call(&mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut found);
        if rc == libc::ERANGE && buf.len() < MAX_NSS_BUFFER {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!found.is_null()).then_some(UserEntry {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }));
    }
}

/// Looks group `name` up: its gid. `Ok(None)`: no such group.
pub fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    let cname = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: group is a plain C struct; all-zero is a valid value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = ptr::null_mut();
        // SAFETY: valid NUL-terminated name, writable struct, writable buffer of `buf.len()`
        // bytes, writable result pointer; all outlive the call.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_NSS_BUFFER {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!found.is_null()).then_some(grp.gr_gid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_root() {
        let root = Some(UserEntry { uid: 0, gid: 0 });
        assert_eq!(user_by_name("root").unwrap(), root);
        assert_eq!(user_by_uid(0).unwrap(), root);
        assert_eq!(group_by_name("root").unwrap(), Some(0));
        assert_eq!(user_by_name("no-such-user-gatehouse").unwrap(), None);
        assert_eq!(user_by_uid(4_000_000_123).unwrap(), None);
        assert_eq!(group_by_name("no-such-group-gatehouse").unwrap(), None);
        assert!(user_by_name("a\0b").is_err());
        assert!(group_by_name("a\0b").is_err());
    }
}
