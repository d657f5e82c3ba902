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
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "describe" -d 'Show the config that applies to a workload or a service: services, routes, subsets, gateways, mTLS mode, authorization policies, analyzer messages'
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
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc help" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc help" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc help" -f -a "pod" -d 'A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the Deployment\'s name finds them): its services, routes, subsets, policies, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc help" -f -a "po" -d 'A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the Deployment\'s name finds them): its services, routes, subsets, policies, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc help" -f -a "workload" -d 'A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the Deployment\'s name finds them): its services, routes, subsets, policies, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc help" -f -a "service" -d 'A Service (or ServiceEntry): its ports, workloads, DestinationRules, routes, gateways, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc help" -f -a "svc" -d 'A Service (or ServiceEntry): its ports, workloads, DestinationRules, routes, gateways, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from pod" -s n -l namespace -d 'The namespace (default: whichever namespace has an object of that name)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from pod" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from pod" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from pod" -s o -l output -d 'Output format (default: text)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from pod" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from pod" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from po" -s n -l namespace -d 'The namespace (default: whichever namespace has an object of that name)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from po" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from po" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from po" -s o -l output -d 'Output format (default: text)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from po" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from po" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from workload" -s n -l namespace -d 'The namespace (default: whichever namespace has an object of that name)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from workload" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from workload" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from workload" -s o -l output -d 'Output format (default: text)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from workload" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from workload" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from service" -s n -l namespace -d 'The namespace (default: whichever namespace has an object of that name)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from service" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from service" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from service" -s o -l output -d 'Output format (default: text)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from service" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from service" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from svc" -s n -l namespace -d 'The namespace (default: whichever namespace has an object of that name)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from svc" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from svc" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from svc" -s o -l output -d 'Output format (default: text)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from svc" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from svc" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from help" -f -a "pod" -d 'A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the Deployment\'s name finds them): its services, routes, subsets, policies, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from help" -f -a "service" -d 'A Service (or ServiceEntry): its ports, workloads, DestinationRules, routes, gateways, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s o -l output -d 'Output format' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate describe completion version help" -f -a "analyze" -d 'Analyze mesh configuration for problems that span objects (Istio\'s IST codes)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate describe completion version help" -f -a "validate" -d 'Validate each object against Istio\'s schema and rules, with file:line and field path'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate describe completion version help" -f -a "describe" -d 'Show the config that applies to a workload or a service: services, routes, subsets, gateways, mTLS mode, authorization policies, analyzer messages'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate describe completion version help" -f -a "completion" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate describe completion version help" -f -a "version" -d 'Print meshctl\'s version'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate describe completion version help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from describe" -f -a "pod" -d 'A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the Deployment\'s name finds them): its services, routes, subsets, policies, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from describe" -f -a "service" -d 'A Service (or ServiceEntry): its ports, workloads, DestinationRules, routes, gateways, warnings'
