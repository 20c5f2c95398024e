//! `linux.netDevices`: moving named host interfaces into the container's network
//! namespace (optionally renamed) with one rtnetlink RTM_NEWLINK request each. On delete
//! nothing is moved back by hand: when the namespace dies the kernel returns physical
//! devices to the host and destroys virtual ones (dummy, veth), as with runc.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use oci_spec::runtime::LinuxNetDevice;

use crate::error::Error;

const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFNAMSIZ: usize = 16;

/// An interface name the kernel would accept (dev_valid_name).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

pub fn index_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    nix::net::if_::if_nametoindex(c.as_c_str()).ok().filter(|idx| *idx != 0)
}

/// Validation before anything is created: names, existence on the host, unique new names.
pub fn validate(devices: &HashMap<String, LinuxNetDevice>) -> Result<(), (String, String)> {
    let mut targets = std::collections::HashSet::new();
    let mut names: Vec<&String> = devices.keys().collect();
    names.sort();
    for host in names {
        let field = format!("linux.netDevices[{host:?}]");
        if !valid_name(host) {
            return Err((field, "not a valid interface name".into()));
        }
        if index_of(host).is_none() {
            return Err((field, "no such interface on the host".into()));
        }
        let target = devices[host].name().clone().filter(|n| !n.is_empty()).unwrap_or_else(|| host.clone());
        if !valid_name(&target) {
            return Err((format!("{field}.name"), format!("{target:?} is not a valid interface name")));
        }
        if !targets.insert(target.clone()) {
            return Err((format!("{field}.name"), format!("{target:?} is used twice")));
        }
    }
    Ok(())
}

/// Moves every device into the network namespace of `pid`. Validation has checked the
/// names: what fails here is the kernel's (or a device that went away meanwhile).
pub fn move_all(devices: &HashMap<String, LinuxNetDevice>, pid: i32) -> crate::error::Result<()> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| Error::io("linux.netDevices: opening the container's netns", e))?;
    let sock = route_socket().map_err(|e| Error::io("linux.netDevices: netlink socket", e))?;
    let mut names: Vec<&String> = devices.keys().collect();
    names.sort();
    for (seq, host) in names.into_iter().enumerate() {
        let field = format!("linux.netDevices[{host:?}]");
        let gone = || io::Error::new(io::ErrorKind::NotFound, "no such interface on the host");
        let index = index_of(host).ok_or_else(|| Error::io(&field, gone()))?;
        let target = devices[host].name().clone().filter(|n| !n.is_empty());
        let msg = newlink(seq as u32 + 1, index, ns.as_raw_fd() as u32, target.as_deref());
        request(&sock, &msg).map_err(|e| Error::io(format!("{field}: moving it into the container"), e))?;
    }
    Ok(())
}

/// Sets the loopback of the caller's (new) network namespace up, as runc does for a
/// container with a network namespace of its own: without it nothing in the container can
/// reach 127.0.0.1. In a new namespace `lo` is always interface 1.
pub fn loopback_up() -> io::Result<()> {
    let sock = route_socket()?;
    let mut buf = vec![0u8; 16];
    // struct ifinfomsg: family, pad, type, index 1, flags IFF_UP, change IFF_UP.
    buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&1i32.to_ne_bytes());
    buf.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    buf.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
    buf[4..6].copy_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    buf[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    buf[8..12].copy_from_slice(&1u32.to_ne_bytes());
    request(&sock, &buf)
}

fn route_socket() -> io::Result<OwnedFd> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
    Ok(socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkRoute)?)
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// nlmsghdr + ifinfomsg + IFLA_NET_NS_FD [+ IFLA_IFNAME].
fn newlink(seq: u32, index: u32, ns_fd: u32, name: Option<&str>) -> Vec<u8> {
    let mut buf = vec![0u8; 16];
    // struct ifinfomsg: family, pad, type, index, flags, change.
    buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(index as i32).to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    push_attr(&mut buf, IFLA_NET_NS_FD, &ns_fd.to_ne_bytes());
    if let Some(n) = name {
        let mut z = n.as_bytes().to_vec();
        z.push(0);
        push_attr(&mut buf, IFLA_IFNAME, &z);
    }
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
    buf[4..6].copy_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    buf[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    buf
}

/// Sends one request and reads the kernel's ack (an NLMSG_ERROR with error 0).
fn request(sock: &OwnedFd, msg: &[u8]) -> io::Result<()> {
    use nix::sys::socket::{recv, send, MsgFlags};
    // The kernel is the default peer of a netlink socket.
    send(sock.as_raw_fd(), msg, MsgFlags::empty())?;
    let mut reply = [0u8; 4096];
    let n = recv(sock.as_raw_fd(), &mut reply, MsgFlags::empty())?;
    if n < 20 {
        return Err(io::Error::other("short netlink reply"));
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::other(format!("unexpected netlink reply type {kind}")));
    }
    let err = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    if err != 0 {
        return Err(io::Error::from_raw_os_error(-err));
    }
    Ok(())
}
