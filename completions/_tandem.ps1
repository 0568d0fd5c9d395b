
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'tandem' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'tandem'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'tandem' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Answer TEXT once and exit; piped stdin is appended as context')
            [CompletionResult]::new('--print', '--print', [CompletionResultType]::ParameterName, 'Answer TEXT once and exit; piped stdin is appended as context')
            [CompletionResult]::new('--conversation', '--conversation', [CompletionResultType]::ParameterName, 'Continue a given conversation (id or title)')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Attach a file or a directory (walked, .gitignore respected) ahead of the prompt; - is stdin; repeatable')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Attach a file or a directory (walked, .gitignore respected) ahead of the prompt; - is stdin; repeatable')
            [CompletionResult]::new('--system', '--system', [CompletionResultType]::ParameterName, 'A system prompt for this turn (after the role''s, with --role)')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Answer as this role: its system prompt and settings (`tandem roles list`); saved with the conversation, so -c keeps it')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object with the answer, route, usage and cost')
            [CompletionResult]::new('-x', '-x', [CompletionResultType]::ParameterName, 'Print only the answer''s first code block, without its fences (the whole answer when it has none), once it is complete: `$(tandem -x --role shell -p "...")`')
            [CompletionResult]::new('--extract', '--extract', [CompletionResultType]::ParameterName, 'Print only the answer''s first code block, without its fences (the whole answer when it has none), once it is complete: `$(tandem -x --role shell -p "...")`')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Continue the last conversation')
            [CompletionResult]::new('--continue', '--continue', [CompletionResultType]::ParameterName, 'Continue the last conversation')
            [CompletionResult]::new('--private', '--private', [CompletionResultType]::ParameterName, 'Keep this conversation on this machine: never routed to the cloud')
            [CompletionResult]::new('--no-history', '--no-history', [CompletionResultType]::ParameterName, 'Keep this exchange out of the history (nothing is written but its cost to the spend ledger, so budgets still hold); for scripts that ask many one-off questions')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show or edit settings (alone: show)')
            [CompletionResult]::new('auth', 'auth', [CompletionResultType]::ParameterValue, 'Manage provider API keys in the OS keyring (alone: status)')
            [CompletionResult]::new('models', 'models', [CompletionResultType]::ParameterValue, 'Manage local models (alone: list)')
            [CompletionResult]::new('roles', 'roles', [CompletionResultType]::ParameterValue, 'List, show and edit roles: system prompts with their own settings (alone: list)')
            [CompletionResult]::new('route', 'route', [CompletionResultType]::ParameterValue, 'Explain where a prompt would go, without calling any model')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'Browse, search, export and delete saved conversations (alone: list)')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Turns, spend, savings and speed per tier for a day, a week or a month (UTC)')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check config, keys, provider reachability and the local model')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the router over an OpenAI-compatible HTTP API, for editors, agents and scripts')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;config' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective settings, each value with the layer it came from')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print the config file''s path')
            [CompletionResult]::new('edit', 'edit', [CompletionResultType]::ParameterValue, 'Open the config file in $EDITOR (created from the defaults when missing)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;config;show' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;config;path' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;config;edit' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;config;help' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective settings, each value with the layer it came from')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print the config file''s path')
            [CompletionResult]::new('edit', 'edit', [CompletionResultType]::ParameterValue, 'Open the config file in $EDITOR (created from the defaults when missing)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;config;help;show' {
            break
        }
        'tandem;config;help;path' {
            break
        }
        'tandem;config;help;edit' {
            break
        }
        'tandem;config;help;help' {
            break
        }
        'tandem;auth' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Store PROVIDER''s key in the keyring (prompted without echo, or read from stdin)')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Delete PROVIDER''s key from the keyring')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show where each provider''s key comes from (never the key)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;auth;set' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;auth;remove' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;auth;status' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;auth;help' {
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Store PROVIDER''s key in the keyring (prompted without echo, or read from stdin)')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Delete PROVIDER''s key from the keyring')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show where each provider''s key comes from (never the key)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;auth;help;set' {
            break
        }
        'tandem;auth;help;remove' {
            break
        }
        'tandem;auth;help;status' {
            break
        }
        'tandem;auth;help;help' {
            break
        }
        'tandem;models' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List catalog and configured models, installed or not')
            [CompletionResult]::new('pull', 'pull', [CompletionResultType]::ParameterValue, 'Download, verify and install a model')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print the installed file''s path')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete an installed model')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check an installed model''s checksum and header')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;models;list' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;models;pull' {
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'Force one download source')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;models;path' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;models;rm' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;models;verify' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;models;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List catalog and configured models, installed or not')
            [CompletionResult]::new('pull', 'pull', [CompletionResultType]::ParameterValue, 'Download, verify and install a model')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print the installed file''s path')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete an installed model')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check an installed model''s checksum and header')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;models;help;list' {
            break
        }
        'tandem;models;help;pull' {
            break
        }
        'tandem;models;help;path' {
            break
        }
        'tandem;models;help;rm' {
            break
        }
        'tandem;models;help;verify' {
            break
        }
        'tandem;models;help;help' {
            break
        }
        'tandem;roles' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the built-in and user roles')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print a role''s file: front matter and prompt')
            [CompletionResult]::new('edit', 'edit', [CompletionResultType]::ParameterValue, 'Open the user''s role file in $EDITOR (started from the built-in or a template)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;roles;list' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;roles;show' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;roles;edit' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;roles;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the built-in and user roles')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print a role''s file: front matter and prompt')
            [CompletionResult]::new('edit', 'edit', [CompletionResultType]::ParameterValue, 'Open the user''s role file in $EDITOR (started from the built-in or a template)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;roles;help;list' {
            break
        }
        'tandem;roles;help;show' {
            break
        }
        'tandem;roles;help;edit' {
            break
        }
        'tandem;roles;help;help' {
            break
        }
        'tandem;route' {
            [CompletionResult]::new('--stats', '--stats', [CompletionResultType]::ParameterName, 'Summarise a file of prompts (JSON lines with "prompt", or one per line; - is stdin): the share each preset keeps local, and how the scores spread')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('--batch', '--batch', [CompletionResultType]::ParameterName, 'Read JSON lines {"id","prompt"} on stdin, write {"id","target","score","reasons"} per line')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the decision as JSON')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;history' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List conversations, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print a conversation''s turns (by id or title)')
            [CompletionResult]::new('search', 'search', [CompletionResultType]::ParameterValue, 'Full-text search over every turn')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write a conversation as Markdown or JSON to stdout')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a conversation and its turns')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;history;list' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'How many to show')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'How many to show')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;history;show' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;history;search' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;history;export' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'format')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;history;rm' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;history;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List conversations, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print a conversation''s turns (by id or title)')
            [CompletionResult]::new('search', 'search', [CompletionResultType]::ParameterValue, 'Full-text search over every turn')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write a conversation as Markdown or JSON to stdout')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a conversation and its turns')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;history;help;list' {
            break
        }
        'tandem;history;help;show' {
            break
        }
        'tandem;history;help;search' {
            break
        }
        'tandem;history;help;export' {
            break
        }
        'tandem;history;help;rm' {
            break
        }
        'tandem;history;help;help' {
            break
        }
        'tandem;stats' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('--day', '--day', [CompletionResultType]::ParameterName, 'Today (the default)')
            [CompletionResult]::new('--week', '--week', [CompletionResultType]::ParameterName, 'The last seven days, today included')
            [CompletionResult]::new('--month', '--month', [CompletionResultType]::ParameterName, 'This calendar month')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the figures as JSON')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;doctor' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the report as JSON')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;serve' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Address to listen on (default: serve.host, 127.0.0.1); any but loopback needs a token')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port to listen on (default: serve.port, 8080)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('--token-from-keyring', '--token-from-keyring', [CompletionResultType]::ParameterName, 'Require the bearer token stored with `tandem auth set serve` (TANDEM_SERVE_TOKEN also works)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Log each request as one JSON object on stderr')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;completions' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Read settings from FILE instead of $XDG_CONFIG_HOME/tandem/config.toml')
            [CompletionResult]::new('--route', '--route', [CompletionResultType]::ParameterName, 'Where prompts go: decided per prompt, or pinned to one tier')
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'Model to answer with: a local name or .gguf path, PROVIDER/MODEL, or a cloud model''s name when one provider lists it; pins the route to its tier unless --route is given')
            [CompletionResult]::new('--theme', '--theme', [CompletionResultType]::ParameterName, 'Colour theme (a file in themes/ or the user''s themes directory)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Log level for the log file (error, warn, info, debug, trace); also TANDEM_LOG')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on stderr but errors')
            [CompletionResult]::new('--no-pull', '--no-pull', [CompletionResultType]::ParameterName, 'Never download the local model, even when it is missing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'tandem;help' {
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Show or edit settings (alone: show)')
            [CompletionResult]::new('auth', 'auth', [CompletionResultType]::ParameterValue, 'Manage provider API keys in the OS keyring (alone: status)')
            [CompletionResult]::new('models', 'models', [CompletionResultType]::ParameterValue, 'Manage local models (alone: list)')
            [CompletionResult]::new('roles', 'roles', [CompletionResultType]::ParameterValue, 'List, show and edit roles: system prompts with their own settings (alone: list)')
            [CompletionResult]::new('route', 'route', [CompletionResultType]::ParameterValue, 'Explain where a prompt would go, without calling any model')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'Browse, search, export and delete saved conversations (alone: list)')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Turns, spend, savings and speed per tier for a day, a week or a month (UTC)')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check config, keys, provider reachability and the local model')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the router over an OpenAI-compatible HTTP API, for editors, agents and scripts')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'tandem;help;config' {
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective settings, each value with the layer it came from')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print the config file''s path')
            [CompletionResult]::new('edit', 'edit', [CompletionResultType]::ParameterValue, 'Open the config file in $EDITOR (created from the defaults when missing)')
            break
        }
        'tandem;help;config;show' {
            break
        }
        'tandem;help;config;path' {
            break
        }
        'tandem;help;config;edit' {
            break
        }
        'tandem;help;auth' {
            [CompletionResult]::new('set', 'set', [CompletionResultType]::ParameterValue, 'Store PROVIDER''s key in the keyring (prompted without echo, or read from stdin)')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Delete PROVIDER''s key from the keyring')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show where each provider''s key comes from (never the key)')
            break
        }
        'tandem;help;auth;set' {
            break
        }
        'tandem;help;auth;remove' {
            break
        }
        'tandem;help;auth;status' {
            break
        }
        'tandem;help;models' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List catalog and configured models, installed or not')
            [CompletionResult]::new('pull', 'pull', [CompletionResultType]::ParameterValue, 'Download, verify and install a model')
            [CompletionResult]::new('path', 'path', [CompletionResultType]::ParameterValue, 'Print the installed file''s path')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete an installed model')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check an installed model''s checksum and header')
            break
        }
        'tandem;help;models;list' {
            break
        }
        'tandem;help;models;pull' {
            break
        }
        'tandem;help;models;path' {
            break
        }
        'tandem;help;models;rm' {
            break
        }
        'tandem;help;models;verify' {
            break
        }
        'tandem;help;roles' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the built-in and user roles')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print a role''s file: front matter and prompt')
            [CompletionResult]::new('edit', 'edit', [CompletionResultType]::ParameterValue, 'Open the user''s role file in $EDITOR (started from the built-in or a template)')
            break
        }
        'tandem;help;roles;list' {
            break
        }
        'tandem;help;roles;show' {
            break
        }
        'tandem;help;roles;edit' {
            break
        }
        'tandem;help;route' {
            break
        }
        'tandem;help;history' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List conversations, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print a conversation''s turns (by id or title)')
            [CompletionResult]::new('search', 'search', [CompletionResultType]::ParameterValue, 'Full-text search over every turn')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write a conversation as Markdown or JSON to stdout')
            [CompletionResult]::new('rm', 'rm', [CompletionResultType]::ParameterValue, 'Delete a conversation and its turns')
            break
        }
        'tandem;help;history;list' {
            break
        }
        'tandem;help;history;show' {
            break
        }
        'tandem;help;history;search' {
            break
        }
        'tandem;help;history;export' {
            break
        }
        'tandem;help;history;rm' {
            break
        }
        'tandem;help;stats' {
            break
        }
        'tandem;help;doctor' {
            break
        }
        'tandem;help;serve' {
            break
        }
        'tandem;help;completions' {
            break
        }
        'tandem;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
