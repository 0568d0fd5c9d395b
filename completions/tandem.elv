
use builtin;
use str;

set edit:completion:arg-completer[tandem] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'tandem'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'tandem'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -p 'Answer TEXT once and exit; piped stdin is appended as context'
            cand --print 'Answer TEXT once and exit; piped stdin is appended as context'
            cand --conversation 'Continue a given conversation (id or title)'
            cand -f 'Attach a file or a directory (walked, .gitignore respected) ahead of the prompt; - is stdin; repeatable'
            cand --file 'Attach a file or a directory (walked, .gitignore respected) ahead of the prompt; - is stdin; repeatable'
            cand --system 'A system prompt for this turn (after the role''s, with --role)'
            cand --role 'Answer as this role: its system prompt and settings (`tandem roles list`); saved with the conversation, so -c keeps it'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand --json 'Print one JSON object with the answer, route, usage and cost'
            cand -x 'Print only the answer''s first code block, without its fences (the whole answer when it has none), once it is complete: `$(tandem -x --role shell -p "...")`'
            cand --extract 'Print only the answer''s first code block, without its fences (the whole answer when it has none), once it is complete: `$(tandem -x --role shell -p "...")`'
            cand -c 'Continue the last conversation'
            cand --continue 'Continue the last conversation'
            cand --private 'Keep this conversation on this machine: never routed to the cloud'
            cand --no-history 'Keep this exchange out of the history (nothing is written but its cost to the spend ledger, so budgets still hold); for scripts that ask many one-off questions'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand config 'Show or edit settings (alone: show)'
            cand auth 'Manage provider API keys in the OS keyring (alone: status)'
            cand models 'Manage local models (alone: list)'
            cand roles 'List, show and edit roles: system prompts with their own settings (alone: list)'
            cand route 'Explain where a prompt would go, without calling any model'
            cand history 'Browse, search, export and delete saved conversations (alone: list)'
            cand stats 'Turns, spend, savings and speed per tier for a day, a week or a month (UTC)'
            cand doctor 'Check config, keys, provider reachability and the local model'
            cand serve 'Serve the router over an OpenAI-compatible HTTP API, for editors, agents and scripts'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;config'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
            cand show 'Print the effective settings, each value with the layer it came from'
            cand path 'Print the config file''s path'
            cand edit 'Open the config file in $EDITOR (created from the defaults when missing)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;config;show'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;config;path'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;config;edit'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;config;help'= {
            cand show 'Print the effective settings, each value with the layer it came from'
            cand path 'Print the config file''s path'
            cand edit 'Open the config file in $EDITOR (created from the defaults when missing)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;config;help;show'= {
        }
        &'tandem;config;help;path'= {
        }
        &'tandem;config;help;edit'= {
        }
        &'tandem;config;help;help'= {
        }
        &'tandem;auth'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
            cand set 'Store PROVIDER''s key in the keyring (prompted without echo, or read from stdin)'
            cand remove 'Delete PROVIDER''s key from the keyring'
            cand status 'Show where each provider''s key comes from (never the key)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;auth;set'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;auth;remove'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;auth;status'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;auth;help'= {
            cand set 'Store PROVIDER''s key in the keyring (prompted without echo, or read from stdin)'
            cand remove 'Delete PROVIDER''s key from the keyring'
            cand status 'Show where each provider''s key comes from (never the key)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;auth;help;set'= {
        }
        &'tandem;auth;help;remove'= {
        }
        &'tandem;auth;help;status'= {
        }
        &'tandem;auth;help;help'= {
        }
        &'tandem;models'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
            cand list 'List catalog and configured models, installed or not'
            cand pull 'Download, verify and install a model'
            cand path 'Print the installed file''s path'
            cand rm 'Delete an installed model'
            cand verify 'Check an installed model''s checksum and header'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;models;list'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;models;pull'= {
            cand --source 'Force one download source'
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;models;path'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;models;rm'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;models;verify'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;models;help'= {
            cand list 'List catalog and configured models, installed or not'
            cand pull 'Download, verify and install a model'
            cand path 'Print the installed file''s path'
            cand rm 'Delete an installed model'
            cand verify 'Check an installed model''s checksum and header'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;models;help;list'= {
        }
        &'tandem;models;help;pull'= {
        }
        &'tandem;models;help;path'= {
        }
        &'tandem;models;help;rm'= {
        }
        &'tandem;models;help;verify'= {
        }
        &'tandem;models;help;help'= {
        }
        &'tandem;roles'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
            cand list 'List the built-in and user roles'
            cand show 'Print a role''s file: front matter and prompt'
            cand edit 'Open the user''s role file in $EDITOR (started from the built-in or a template)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;roles;list'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;roles;show'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;roles;edit'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;roles;help'= {
            cand list 'List the built-in and user roles'
            cand show 'Print a role''s file: front matter and prompt'
            cand edit 'Open the user''s role file in $EDITOR (started from the built-in or a template)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;roles;help;list'= {
        }
        &'tandem;roles;help;show'= {
        }
        &'tandem;roles;help;edit'= {
        }
        &'tandem;roles;help;help'= {
        }
        &'tandem;route'= {
            cand --stats 'Summarise a file of prompts (JSON lines with "prompt", or one per line; - is stdin): the share each preset keeps local, and how the scores spread'
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand --batch 'Read JSON lines {"id","prompt"} on stdin, write {"id","target","score","reasons"} per line'
            cand --json 'Print the decision as JSON'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;history'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
            cand list 'List conversations, newest first'
            cand show 'Print a conversation''s turns (by id or title)'
            cand search 'Full-text search over every turn'
            cand export 'Write a conversation as Markdown or JSON to stdout'
            cand rm 'Delete a conversation and its turns'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;history;list'= {
            cand -n 'How many to show'
            cand --limit 'How many to show'
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;history;show'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;history;search'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;history;export'= {
            cand --format 'format'
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;history;rm'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;history;help'= {
            cand list 'List conversations, newest first'
            cand show 'Print a conversation''s turns (by id or title)'
            cand search 'Full-text search over every turn'
            cand export 'Write a conversation as Markdown or JSON to stdout'
            cand rm 'Delete a conversation and its turns'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;history;help;list'= {
        }
        &'tandem;history;help;show'= {
        }
        &'tandem;history;help;search'= {
        }
        &'tandem;history;help;export'= {
        }
        &'tandem;history;help;rm'= {
        }
        &'tandem;history;help;help'= {
        }
        &'tandem;stats'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand --day 'Today (the default)'
            cand --week 'The last seven days, today included'
            cand --month 'This calendar month'
            cand --json 'Print the figures as JSON'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;doctor'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand --json 'Print the report as JSON'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;serve'= {
            cand --host 'Address to listen on (default: serve.host, 127.0.0.1); any but loopback needs a token'
            cand --port 'Port to listen on (default: serve.port, 8080)'
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand --token-from-keyring 'Require the bearer token stored with `tandem auth set serve` (TANDEM_SERVE_TOKEN also works)'
            cand --json 'Log each request as one JSON object on stderr'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;completions'= {
            cand --config 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml'
            cand --route 'Where prompts go: decided per prompt, or pinned to one tier'
            cand --model 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given'
            cand --theme 'Colour theme (a file in themes/ or the user''s themes directory)'
            cand --log-level 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG'
            cand -q 'Print nothing on stderr but errors'
            cand --quiet 'Print nothing on stderr but errors'
            cand --no-pull 'Never download the local model, even when it is missing'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'tandem;help'= {
            cand config 'Show or edit settings (alone: show)'
            cand auth 'Manage provider API keys in the OS keyring (alone: status)'
            cand models 'Manage local models (alone: list)'
            cand roles 'List, show and edit roles: system prompts with their own settings (alone: list)'
            cand route 'Explain where a prompt would go, without calling any model'
            cand history 'Browse, search, export and delete saved conversations (alone: list)'
            cand stats 'Turns, spend, savings and speed per tier for a day, a week or a month (UTC)'
            cand doctor 'Check config, keys, provider reachability and the local model'
            cand serve 'Serve the router over an OpenAI-compatible HTTP API, for editors, agents and scripts'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'tandem;help;config'= {
            cand show 'Print the effective settings, each value with the layer it came from'
            cand path 'Print the config file''s path'
            cand edit 'Open the config file in $EDITOR (created from the defaults when missing)'
        }
        &'tandem;help;config;show'= {
        }
        &'tandem;help;config;path'= {
        }
        &'tandem;help;config;edit'= {
        }
        &'tandem;help;auth'= {
            cand set 'Store PROVIDER''s key in the keyring (prompted without echo, or read from stdin)'
            cand remove 'Delete PROVIDER''s key from the keyring'
            cand status 'Show where each provider''s key comes from (never the key)'
        }
        &'tandem;help;auth;set'= {
        }
        &'tandem;help;auth;remove'= {
        }
        &'tandem;help;auth;status'= {
        }
        &'tandem;help;models'= {
            cand list 'List catalog and configured models, installed or not'
            cand pull 'Download, verify and install a model'
            cand path 'Print the installed file''s path'
            cand rm 'Delete an installed model'
            cand verify 'Check an installed model''s checksum and header'
        }
        &'tandem;help;models;list'= {
        }
        &'tandem;help;models;pull'= {
        }
        &'tandem;help;models;path'= {
        }
        &'tandem;help;models;rm'= {
        }
        &'tandem;help;models;verify'= {
        }
        &'tandem;help;roles'= {
            cand list 'List the built-in and user roles'
            cand show 'Print a role''s file: front matter and prompt'
            cand edit 'Open the user''s role file in $EDITOR (started from the built-in or a template)'
        }
        &'tandem;help;roles;list'= {
        }
        &'tandem;help;roles;show'= {
        }
        &'tandem;help;roles;edit'= {
        }
        &'tandem;help;route'= {
        }
        &'tandem;help;history'= {
            cand list 'List conversations, newest first'
            cand show 'Print a conversation''s turns (by id or title)'
            cand search 'Full-text search over every turn'
            cand export 'Write a conversation as Markdown or JSON to stdout'
            cand rm 'Delete a conversation and its turns'
        }
        &'tandem;help;history;list'= {
        }
        &'tandem;help;history;show'= {
        }
        &'tandem;help;history;search'= {
        }
        &'tandem;help;history;export'= {
        }
        &'tandem;help;history;rm'= {
        }
        &'tandem;help;stats'= {
        }
        &'tandem;help;doctor'= {
        }
        &'tandem;help;serve'= {
        }
        &'tandem;help;completions'= {
        }
        &'tandem;help;help'= {
        }
    ]
    $completions[$command]
}
