//! The quick start of the README and the crate docs: a local stack (development only), a
//! session issued, the end user's applet and the technician's console paired, one chat
//! message each way and a clean end, using only the `rescue` crate.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use rescue::{dev::LocalStack, Policy};

#[tokio::main]
pub(crate) async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stack = LocalStack::start().await?;
    let s = stack.issue(Policy::default())?;
    let (a, c) = tokio::join!(stack.applet_session(&s), stack.console_session(&s));
    let (mut applet, mut console) = (a?, c?);
    console.chat("Hello, I'm your technician.").await?;
    println!("end user got: {}", applet.next_chat().await?);
    applet.chat("Thanks, the printer is stuck.").await?;
    println!("technician got: {}", console.next_chat().await?);
    console.end();
    println!("ended by the {:?}", applet.ended().await?);
    Ok(())
}
