//! Key bindings: `KeyEvent` -> `Action` for the focused pane, the defaults, and the user's
//! `[keys]` overrides parsed once at start-up. Knows nothing of app state beyond `Focus`.

use std::collections::BTreeMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Which pane receives typed keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Composer,
    Transcript,
    Sidebar,
}

macro_rules! actions {
    ($($variant:ident => $name:literal, $help:literal;)*) => {
        /// What a key does; named after the intent, never the key.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Action { $($variant),* }
        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];
            /// The name used in `[keys]`.
            pub fn name(self) -> &'static str { match self { $(Action::$variant => $name),* } }
            pub fn help(self) -> &'static str { match self { $(Action::$variant => $help),* } }
            pub fn parse(s: &str) -> Option<Action> {
                match s { $($name => Some(Action::$variant),)* _ => None }
            }
        }
    };
}

actions! {
    Send => "send", "send the prompt";
    Newline => "newline", "new line in the prompt";
    Cancel => "cancel", "stop the answer, close overlays";
    Interrupt => "interrupt", "stop, clear, or quit when idle";
    Quit => "quit", "quit";
    NewChat => "new_chat", "new chat";
    CycleRoute => "cycle_route", "cycle route: auto, local, cloud";
    Editor => "editor", "edit the prompt in $EDITOR";
    CopyCode => "copy_code", "copy the last (or Nth) code block";
    PageUp => "page_up", "scroll up a page";
    PageDown => "page_down", "scroll down a page";
    ScrollUp => "scroll_up", "scroll up";
    ScrollDown => "scroll_down", "scroll down";
    Top => "top", "jump to the top (transcript)";
    Bottom => "bottom", "jump to the bottom (transcript)";
    FocusNext => "focus_next", "move focus";
    ToggleSidebar => "toggle_sidebar", "show or hide conversations";
    Help => "help", "this help";
}

/// A key with its modifiers, comparable regardless of how crossterm reported SHIFT on chars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chord {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Chord {
    pub fn from_event(k: &KeyEvent) -> Chord {
        let mut mods =
            k.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        // Terminals report 'G' both with and without SHIFT; the char already says it.
        if let KeyCode::Char(_) = k.code {
            mods.remove(KeyModifiers::SHIFT);
        }
        Chord { code: k.code, mods }
    }

    /// Parses "ctrl-n", "alt-enter", "shift-enter", "pageup", "esc", "G", "f1".
    pub fn parse(s: &str) -> Option<Chord> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s.trim();
        loop {
            let lower = rest.to_ascii_lowercase();
            let (m, n) = if lower.starts_with("ctrl-") {
                (KeyModifiers::CONTROL, 5)
            } else if lower.starts_with("alt-") {
                (KeyModifiers::ALT, 4)
            } else if lower.starts_with("shift-") {
                (KeyModifiers::SHIFT, 6)
            } else {
                break;
            };
            mods |= m;
            rest = &rest[n..];
        }
        let code = match rest.to_ascii_lowercase().as_str() {
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "space" => KeyCode::Char(' '),
            f if f.len() > 1 && f.starts_with('f') => KeyCode::F(f[1..].parse().ok()?),
            _ => {
                let mut chars = rest.chars();
                let c = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                // Ctrl chords are case-insensitive in terminals; plain letters are not (g vs G).
                KeyCode::Char(if mods.contains(KeyModifiers::CONTROL) {
                    c.to_ascii_lowercase()
                } else {
                    c
                })
            }
        };
        if let KeyCode::Char(_) = code {
            mods.remove(KeyModifiers::SHIFT);
        }
        Some(Chord { code, mods })
    }

    /// A key that types a character in the composer: a char without Ctrl or Alt.
    pub fn is_text(&self) -> bool {
        matches!(self.code, KeyCode::Char(_))
            && !self
                .mods
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
    }

    pub fn label(&self) -> String {
        let mut s = String::new();
        for (m, n) in [
            (KeyModifiers::CONTROL, "Ctrl-"),
            (KeyModifiers::ALT, "Alt-"),
            (KeyModifiers::SHIFT, "Shift-"),
        ] {
            if self.mods.contains(m) {
                s.push_str(n);
            }
        }
        match self.code {
            KeyCode::Char(' ') => s.push_str("Space"),
            KeyCode::Char(c) if self.mods.contains(KeyModifiers::CONTROL) => {
                s.push(c.to_ascii_uppercase())
            }
            KeyCode::Char(c) => s.push(c),
            KeyCode::F(n) => s.push_str(&format!("F{n}")),
            KeyCode::PageUp => s.push_str("PgUp"),
            KeyCode::PageDown => s.push_str("PgDn"),
            other => s.push_str(&format!("{other:?}")),
        }
        s
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeymapError {
    #[error("keys.{0}: unknown action; known: {1}")]
    UnknownAction(String, String),
    #[error(
        "keys.{action}: cannot read key {key:?}; write it like \"ctrl-n\", \"alt-enter\" or \"f2\""
    )]
    BadKey { action: String, key: String },
}

/// Bindings per scope. Global bindings apply in every pane; the transcript adds its own
/// (g/G), which only make sense where letters are not text.
#[derive(Debug, Clone)]
pub struct Keymap {
    global: Vec<(Chord, Action)>,
    transcript: Vec<(Chord, Action)>,
}

impl Default for Keymap {
    fn default() -> Self {
        let c = |s: &str| Chord::parse(s).expect("default chords parse");
        let global = [
            ("enter", Action::Send),
            ("alt-enter", Action::Newline),
            ("shift-enter", Action::Newline),
            ("ctrl-j", Action::Newline),
            ("esc", Action::Cancel),
            ("ctrl-c", Action::Interrupt),
            ("ctrl-d", Action::Quit),
            ("ctrl-n", Action::NewChat),
            ("ctrl-r", Action::CycleRoute),
            ("ctrl-e", Action::Editor),
            ("ctrl-y", Action::CopyCode),
            ("pageup", Action::PageUp),
            ("pagedown", Action::PageDown),
            ("tab", Action::FocusNext),
            ("ctrl-b", Action::ToggleSidebar),
            ("f1", Action::Help),
        ]
        .map(|(k, a)| (c(k), a))
        .to_vec();
        let transcript = [
            ("g", Action::Top),
            ("G", Action::Bottom),
            ("k", Action::ScrollUp),
            ("j", Action::ScrollDown),
            ("up", Action::ScrollUp),
            ("down", Action::ScrollDown),
            ("?", Action::Help),
        ]
        .map(|(k, a)| (c(k), a))
        .to_vec();
        Keymap { global, transcript }
    }
}

impl Keymap {
    /// The defaults with `[keys]` applied: an override replaces every default chord of its action.
    /// It lands in the transcript scope when it is a plain character (globally it would eat that
    /// letter while typing) or when the action only had transcript defaults (g/G, j/k stay
    /// transcript keys whatever they are rebound to); anything else is global.
    pub fn from_config(keys: &BTreeMap<String, String>) -> Result<Keymap, KeymapError> {
        let mut map = Keymap::default();
        let defaults = Keymap::default();
        for (name, key) in keys {
            let action = Action::parse(name).ok_or_else(|| {
                let known: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
                KeymapError::UnknownAction(name.clone(), known.join(", "))
            })?;
            let chord = Chord::parse(key).ok_or_else(|| KeymapError::BadKey {
                action: name.clone(),
                key: key.clone(),
            })?;
            for list in [&mut map.global, &mut map.transcript] {
                list.retain(|(c, a)| *a != action && *c != chord);
            }
            let transcript_only = !defaults.global.iter().any(|(_, a)| *a == action)
                && defaults.transcript.iter().any(|(_, a)| *a == action);
            if chord.is_text() || transcript_only {
                map.transcript.push((chord, action));
            } else {
                map.global.push((chord, action));
            }
        }
        Ok(map)
    }

    pub fn action(&self, focus: Focus, key: &KeyEvent) -> Option<Action> {
        let chord = Chord::from_event(key);
        let find =
            |list: &[(Chord, Action)]| list.iter().find(|(c, _)| *c == chord).map(|(_, a)| *a);
        if focus == Focus::Transcript
            && let Some(a) = find(&self.transcript)
        {
            return Some(a);
        }
        find(&self.global)
    }

    /// Every binding as (keys, action) for the help overlay, in `Action` order.
    pub fn describe(&self) -> Vec<(String, Action)> {
        Action::ALL
            .iter()
            .filter_map(|a| {
                let keys: Vec<String> = self
                    .global
                    .iter()
                    .chain(&self.transcript)
                    .filter(|(_, b)| b == a)
                    .map(|(c, _)| c.label())
                    .collect();
                (!keys.is_empty()).then(|| (keys.join(" / "), *a))
            })
            .collect()
    }

    /// The first key bound to `action`, for hints.
    pub fn key_for(&self, action: Action) -> String {
        self.global
            .iter()
            .chain(&self.transcript)
            .find(|(_, a)| *a == action)
            .map(|(c, _)| c.label())
            .unwrap_or_else(|| "unbound".into())
    }
}
