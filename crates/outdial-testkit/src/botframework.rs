//! A real Microsoft Bot Framework bot for the end-to-end tests: `botframework/bot.js` (botbuilder v4, npm) behind
//! `offline-directline` (npm), both Node.js processes on 127.0.0.1, installed by `scripts/install.sh --test`.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The folder of the bot and its `node_modules`.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/botframework");

/// The bot and its Direct Line service; both killed when dropped.
pub struct BotFramework {
    children: Vec<Child>,
    /// The bot's `directLineUrl` (offline-directline: `directLineFlavor = "offline-directline"`).
    pub direct_line_url: String,
    bot_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn node(args: &[&str]) -> Child {
    Command::new("node")
        .args(args)
        .current_dir(DIR)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("node (Node.js) runs the Bot Framework bot; scripts/install.sh --test installs its packages")
}

fn wait_listening(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on 127.0.0.1:{port} after 10 s");
}

impl BotFramework {
    pub fn start() -> BotFramework {
        let (bot_port, dl_port) = (free_port(), free_port());
        let bot = node(&["bot.js", &bot_port.to_string()]);
        let messages = format!("http://127.0.0.1:{bot_port}/api/messages");
        let dl = node(&["directline.js", &dl_port.to_string(), &messages]);
        let b = BotFramework {
            children: vec![bot, dl],
            direct_line_url: format!("http://127.0.0.1:{dl_port}"),
            bot_port,
        };
        wait_listening(bot_port);
        wait_listening(dl_port);
        b
    }

    /// Every activity the bot received, in order (the bot's own record, `GET /received`).
    pub fn received(&self) -> Vec<serde_json::Value> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.bot_port)).unwrap();
        write!(s, "GET /received HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_default()
    }
}

impl Drop for BotFramework {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
