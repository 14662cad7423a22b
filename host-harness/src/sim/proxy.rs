//! A byte relay in front of an HTTP server, used only when `drop`/`reset` or
//! `truncate` faults are on: it owns the client-facing sockets so a
//! request's connection can be shut without any response, or right after
//! part of a response.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Live relayed connections, keyed by the relay's local address on the
/// internal side (which is what the HTTP server sees as the peer).
#[derive(Default)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<SocketAddr, (TcpStream, TcpStream)>>,
    /// Connections whose next response is cut: body bytes to let through.
    cuts: Mutex<HashMap<SocketAddr, usize>>,
}

impl Registry {
    /// Shuts both sockets of the connection the server sees as `peer`.
    pub(crate) fn kill(&self, peer: SocketAddr) -> bool {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        match conns.get(&peer) {
            Some((client, inner)) => {
                let _ = client.shutdown(Shutdown::Both);
                let _ = inner.shutdown(Shutdown::Both);
                true
            }
            None => false,
        }
    }

    /// Arms a cut: the next response on `peer`'s connection reaches the client
    /// with its head and only `keep` bytes of its body, then the connection
    /// closes. False when `peer` is not relayed.
    pub(crate) fn cut_after(&self, peer: SocketAddr, keep: usize) -> bool {
        if !self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&peer)
        {
            return false;
        }
        self.cuts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, keep);
        true
    }

    fn take_cut(&self, peer: &SocketAddr) -> Option<usize> {
        self.cuts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(peer)
    }

    fn kill_all(&self) {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for (client, inner) in conns.values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = inner.shutdown(Shutdown::Both);
        }
    }

    fn remove(&self, key: &SocketAddr) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.take_cut(key);
    }
}

pub(crate) struct Proxy {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    registry: Arc<Registry>,
}

impl Proxy {
    pub(crate) fn start(public: TcpListener, inner: SocketAddr) -> io::Result<Proxy> {
        let addr = public.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let registry = Arc::new(Registry::default());
        let accept = {
            let stop = Arc::clone(&stop);
            let registry = Arc::clone(&registry);
            std::thread::Builder::new()
                .name("graph-sim-relay".into())
                .spawn(move || {
                    for conn in public.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(client) = conn else { continue };
                        let _ = relay(client, inner, &registry);
                    }
                })?
        };
        Ok(Proxy {
            stop,
            addr,
            accept: Some(accept),
            registry,
        })
    }

    pub(crate) fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    pub(crate) fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let wake = if self.addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], self.addr.port()))
        } else {
            self.addr
        };
        let _ = TcpStream::connect(wake);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
        self.registry.kill_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.stop_now();
        }
    }
}

fn relay(client: TcpStream, inner_addr: SocketAddr, registry: &Arc<Registry>) -> io::Result<()> {
    let inner = TcpStream::connect(inner_addr)?;
    let _ = client.set_nodelay(true);
    let _ = inner.set_nodelay(true);
    let key = inner.local_addr()?;
    registry
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (client.try_clone()?, inner.try_clone()?));

    let mut client_read = client.try_clone()?;
    let mut inner_write = inner.try_clone()?;
    std::thread::Builder::new()
        .name("graph-sim-relay-up".into())
        .spawn(move || {
            let _ = io::copy(&mut client_read, &mut inner_write);
            let _ = inner_write.shutdown(Shutdown::Write);
        })?;

    let mut inner_read = inner;
    let mut client_write = client;
    let registry = Arc::clone(registry);
    std::thread::Builder::new()
        .name("graph-sim-relay-down".into())
        .spawn(move || {
            relay_down(&mut inner_read, &mut client_write, &registry, &key);
            let _ = client_write.shutdown(Shutdown::Both);
            let _ = inner_read.shutdown(Shutdown::Both);
            registry.remove(&key);
        })?;
    Ok(())
}

/// Copies responses to the client until either side closes or an armed cut
/// has let through a response head and its share of the body.
fn relay_down(
    inner: &mut TcpStream,
    client: &mut TcpStream,
    registry: &Registry,
    key: &SocketAddr,
) {
    let mut buf = vec![0u8; 16 * 1024];
    // (body bytes to keep, bytes of the response held back so far)
    let mut cut: Option<(usize, Vec<u8>)> = None;
    loop {
        let n = match inner.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.is_none() {
            cut = registry.take_cut(key).map(|keep| (keep, Vec::new()));
        }
        match &mut cut {
            None => {
                if client.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Some((keep, held)) => {
                held.extend_from_slice(&buf[..n]);
                if let Some(head) = held.windows(4).position(|w| w == b"\r\n\r\n") {
                    let upto = head + 4 + *keep;
                    if held.len() >= upto {
                        let _ = client.write_all(&held[..upto]);
                        let _ = client.flush();
                        return;
                    }
                }
            }
        }
    }
}
