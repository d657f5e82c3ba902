# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_meshctl_global_optspecs
    string join \n h/help V/version
end

function __fish_meshctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_meshctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_meshctl_using_subcommand
    set -l cmd (__fish_meshctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c meshctl -n "__fish_meshctl_needs_command" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_needs_command" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "analyze" -d 'Analyze mesh configuration for problems that span objects (Istio\'s IST codes)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "validate" -d 'Validate each object against Istio\'s schema and rules, with file:line and field path'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "proxy-status" -d 'Show whether each proxy has what meshd sent it (CDS, LDS, EDS, RDS); with a proxy, diff meshd\'s config against the proxy\'s own'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "ps" -d 'Show whether each proxy has what meshd sent it (CDS, LDS, EDS, RDS); with a proxy, diff meshd\'s config against the proxy\'s own'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "demo" -d 'Run a whole sample mesh (bookinfo) on this machine: meshd, the apps and a sidecar for each on loopback addresses, with traffic; no root, no cluster, no Docker'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "completion" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "version" -d 'Print meshctl\'s version'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -s o -l output -d 'Output format' -r -f -a "log\t'One line per message: `Level [CODE] (Kind ns/name file:line) text`'
json\t'A JSON array of {code, level, message, origin, reference, documentationUrl}'
yaml\t'The same array as YAML'
sarif\t'SARIF 2.1.0, for code-scanning tools'
github\t'GitHub Actions workflow commands (annotations on the pull request)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l failure-threshold -d 'Exit 79 when any message is at or above this level (Info, Warning, Error)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l output-threshold -d 'Print only messages at or above this level (Info, Warning, Error)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -s S -l suppress -d 'Suppress messages: \'CODE=Kind ns/name\'; `*` matches any text in either part. Repeatable. A suppression that matches nothing is reported on stderr' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -s n -l namespace -d 'Report only objects in this namespace (files-only analysis reports all by default)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l meshConfigFile -d 'Mesh config (a MeshConfig YAML document) to analyze against' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l meshNetworksFile -d 'Mesh networks (a MeshNetworks YAML document) to analyze against' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -s R -l recursive -d 'Read directories recursively' -r -f -a "true\t''
false\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l analyzer -d 'Run only this analyzer (Istio\'s name, e.g. virtualservice.DestinationHostAnalyzer). Repeatable' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l color -d 'Color the log output' -r -f -a "auto\t''
always\t''
never\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -s A -l all-namespaces -d 'Report objects in every namespace (the default for files-only analysis)'
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l list-analyzers -d 'List the analyzers with the codes they report, then exit'
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l use-kube -d 'Analyze the live cluster with the files overlaid (not built yet)'
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -s v -l verbose -d 'Add each message type\'s description to log output'
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s f -l filename -d 'Files or directories to validate (`-` reads stdin). Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s o -l output -d 'Output format (default: one line per problem)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s R -l recursive -d 'Read directories recursively' -r -f -a "true\t''
false\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -l strict -d 'Treat warnings as failures (exit 79)'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand validate" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -l controlplane -d 'meshd\'s debug API' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -l admin -d 'The proxy\'s admin address for the diff (default: its IP from the node id, port 15000, as in local mode)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -l wait -d 'Poll until every proxy is SYNCED (or every section matches), up to this long (`10s`, `1m`), before reporting: a CI gate that tolerates pushes in flight' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -s o -l output -d 'Output format (default: a table, or unified diffs for one proxy)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -l controlplane -d 'meshd\'s debug API' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -l admin -d 'The proxy\'s admin address for the diff (default: its IP from the node id, port 15000, as in local mode)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -l wait -d 'Poll until every proxy is SYNCED (or every section matches), up to this long (`10s`, `1m`), before reporting: a CI gate that tolerates pushes in flight' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -s o -l output -d 'Output format (default: a table, or unified diffs for one proxy)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l engine -d 'The sidecars\' data plane' -r -f -a "envoy\t'Envoy, run and supervised by mesh-proxy (agent mode)'
native\t'mesh-proxy\'s own data plane'"
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l duration -d 'Stop after this long once the mesh is up (`30s`, `2m`, `500ms`) instead of waiting for Ctrl-C' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l dir -d 'Write the generated config and the logs here, and keep them (default: a temporary directory, removed at exit)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l ip-prefix -d 'The loopback addresses to use, as three octets: meshd on A.B.C.1, the workloads from A.B.C.11' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l requests -d 'How many requests to send through productpage' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s o -l output -d 'Output format' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-status demo completion version help" -f -a "analyze" -d 'Analyze mesh configuration for problems that span objects (Istio\'s IST codes)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-status demo completion version help" -f -a "validate" -d 'Validate each object against Istio\'s schema and rules, with file:line and field path'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-status demo completion version help" -f -a "proxy-status" -d 'Show whether each proxy has what meshd sent it (CDS, LDS, EDS, RDS); with a proxy, diff meshd\'s config against the proxy\'s own'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-status demo completion version help" -f -a "demo" -d 'Run a whole sample mesh (bookinfo) on this machine: meshd, the apps and a sidecar for each on loopback addresses, with traffic; no root, no cluster, no Docker'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-status demo completion version help" -f -a "completion" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-status demo completion version help" -f -a "version" -d 'Print meshctl\'s version'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-status demo completion version help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
