//! Running `Effect`s: start a turn in the pipeline, load and manage conversations (and their
//! privacy pin), switch themes and local models, copy through OSC 52, and hand the terminal to
//! `$EDITOR`. Results come back to the app as `Msg`s.

use std::io::{Write, stdout};

use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio_util::sync::CancellationToken;

use crate::chat::Message;
use crate::tui::app::App;
use crate::tui::background;
use crate::tui::driver::Driver;
use crate::tui::msg::{ConvRow, Effect, LoadedTurn, Msg, RoleSet};
use crate::tui::theme::{self, Background};
use crate::turn::{Badge, Done, Finish, Refusal, TurnEvent};

impl Driver<'_> {
    pub(super) async fn run_effect<B: Backend>(
        &mut self,
        effect: Effect,
        term: &mut Terminal<B>,
        app: &App,
    ) -> anyhow::Result<()>
    where
        B::Error: Send + Sync + 'static,
    {
        match effect {
            Effect::Ask { req, request } => {
                let cancel = CancellationToken::new();
                self.cancel = Some(cancel.clone());
                let events = self.pipeline.start(request, cancel);
                // Consumed off the event loop; each event comes back as a Msg.
                background::spawn_turn(req, events, self.tx.clone());
            }
            Effect::AskWith {
                req,
                mut request,
                attach,
            } => {
                // Read before anything is sent; none of it goes if one cannot be read.
                let caps = (&self.cfg.attach).into();
                match crate::attach::load_with(&attach, caps, &mut std::io::empty()) {
                    Ok(a) => {
                        let lines = a.iter().map(|a| a.summary()).collect();
                        let _ = self.tx.send(Msg::Attached { req, lines });
                        request.attachments = a;
                        let cancel = CancellationToken::new();
                        self.cancel = Some(cancel.clone());
                        let events = self.pipeline.start(request, cancel);
                        background::spawn_turn(req, events, self.tx.clone());
                    }
                    Err(e) => {
                        let refused = Refusal::Attachment(e.to_string());
                        let done = Done {
                            finish: Finish::Refused,
                            spend: self.pipeline.spend(),
                        };
                        for event in [TurnEvent::Refused(refused), TurnEvent::Done(done)] {
                            let _ = self.tx.send(Msg::Turn { req, event });
                        }
                        let _ = self.tx.send(Msg::TurnEnded { req });
                    }
                }
            }
            Effect::LoadRole(name) => self.load_role(name.as_deref()),
            Effect::CompletePath(prefix) => {
                let choices = path_choices(&prefix);
                let _ = self.tx.send(Msg::PathChoices { prefix, choices });
            }
            Effect::SwitchLocal(name) => {
                let mut cfg = self.cfg.clone();
                cfg.local.model = name;
                background::spawn_local_start(
                    cfg,
                    self.pipeline.tiers().clone(),
                    self.tx.clone(),
                    self.local_generation.clone(),
                    true,
                );
            }
            Effect::Cancel => {
                if let Some(c) = &self.cancel {
                    c.cancel();
                }
            }
            Effect::SetPrivate { conv, private } => {
                if let Err(e) = self.pipeline.store().set_private(conv, private) {
                    self.notice(format!("the private pin was not saved: {e}"));
                }
            }
            Effect::LoadConversation(id) => self.load(id),
            Effect::RefreshConversations => self.refresh_conversations(),
            Effect::Rename { conv, title } => {
                if let Err(e) = self.pipeline.store().rename(conv, &title) {
                    self.notice(e.to_string());
                }
            }
            Effect::Delete(conv) => {
                if let Err(e) = self.pipeline.store().delete(conv) {
                    self.notice(e.to_string());
                }
            }
            Effect::LoadTheme(name) => {
                let msg = match theme::load(&name, Some(&self.cfg.paths.themes_dir())) {
                    Ok(t) => {
                        let dark = t.background == Background::Dark;
                        self.theme = t;
                        Ok((name, dark))
                    }
                    Err(e) => Err(e.to_string()),
                };
                let _ = self.tx.send(Msg::ThemeLoaded(msg));
            }
            Effect::Copy(text) => {
                // OSC 52 asks the terminal itself to set the clipboard, which also works over ssh.
                let mut out = stdout();
                let _ = write!(out, "\x1b]52;c;{}\x07", base64(text.as_bytes()));
                let _ = out.flush();
            }
            Effect::OpenEditor(text) => {
                let result = self.edit(&text);
                crate::tui::enter_terminal()?;
                self.events = Some(crossterm::event::EventStream::new());
                term.clear()?;
                let _ = self.tx.send(Msg::EditorDone(result));
            }
            Effect::Quit => {
                if app.running.is_some()
                    && let Some(c) = &self.cancel
                {
                    c.cancel();
                }
                self.quit = true;
            }
        }
        Ok(())
    }

    fn notice(&self, text: String) {
        let _ = self.tx.send(Msg::Notice(text));
    }

    pub(super) fn refresh_conversations(&self) {
        let rows = self
            .pipeline
            .store()
            .list(500)
            .unwrap_or_default()
            .into_iter()
            .map(|s| ConvRow {
                id: s.conversation.id,
                title: s.conversation.title,
                updated_at: s.conversation.updated_at,
                local_answers: s.local_answers,
                cloud_answers: s.cloud_answers,
            })
            .collect();
        let _ = self.tx.send(Msg::Conversations(rows));
    }

    fn load(&self, id: crate::session::ConversationId) {
        let loaded = {
            let store = self.pipeline.store();
            store
                .conversation(id)
                .map(|c| (c, store.turns(id).unwrap_or_default()))
        };
        let (conv, turns) = match loaded {
            Ok(x) => x,
            Err(e) => return self.notice(e.to_string()),
        };
        let turns = turns
            .into_iter()
            .map(|t| LoadedTurn {
                badge: Badge::of_turn(&t),
                interrupted: t.cut_off() && t.role == crate::chat::Role::Assistant,
                message: Message::new(t.role, shown(&t)),
            })
            .collect();
        let _ = self.tx.send(Msg::ConversationLoaded {
            id,
            title: conv.title,
            private: conv.private,
            turns,
        });
        // The chat's role comes back with it.
        if let Some(role) = &conv.role {
            self.load_role(Some(role));
        }
    }

    /// Reads and checks a role for the chat; without a name, lists them in a notice.
    fn load_role(&self, name: Option<&str>) {
        let dir = self.cfg.paths.roles_dir();
        let Some(name) = name else {
            let names = crate::roles::names(&dir).join(", ");
            return self.notice(format!(
                "roles: {names}; /role NAME picks one, /role off drops it"
            ));
        };
        let role = crate::roles::load(name, &dir)
            .and_then(|r| r.check(self.cfg).map(|()| r))
            .map(|r| RoleSet {
                name: r.name,
                system: r.prompt,
                temperature: r.temperature,
                max_tokens: r.max_tokens,
            })
            .map_err(|e| e.to_string());
        let _ = self.tx.send(Msg::RoleLoaded(role));
    }

    /// Runs the editor on `text` with the screen suspended; blocking this task is what the
    /// user expects meanwhile.
    fn edit(&mut self, text: &str) -> Result<String, String> {
        self.events = None;
        crate::tui::restore_terminal();
        tokio::task::block_in_place(|| crate::editor::edit_text(text)).map_err(|e| e.to_string())
    }
}

/// The paths `prefix` could complete to, sorted: entries of its directory whose names start
/// with its last part (hidden ones only when that part starts with a dot), directories with a
/// trailing `/`, at most 200.
fn path_choices(prefix: &str) -> Vec<String> {
    let (dir, part) = match prefix.rfind('/') {
        Some(i) => prefix.split_at(i + 1),
        None => ("", prefix),
    };
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return vec![];
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let hidden = name.starts_with('.') && !part.starts_with('.');
            if hidden || !name.starts_with(part) {
                return None;
            }
            let slash = if e.file_type().ok()?.is_dir() {
                "/"
            } else {
                ""
            };
            Some(format!("{dir}{name}{slash}"))
        })
        .collect();
    out.sort();
    out.truncate(200);
    out
}

/// A stored turn as the transcript shows it: a prompt's attachments as one line each above it.
fn shown(t: &crate::session::Turn) -> String {
    let mut out = String::new();
    for a in &t.attachments {
        out.push_str(&format!("+ {}\n", a.summary));
    }
    if !t.attachments.is_empty() {
        out.push('\n');
    }
    out.push_str(&t.content);
    out
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
