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
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "proxy-config" -d 'Show a proxy\'s clusters, listeners, routes, endpoints, secrets, bootstrap or log levels'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "pc" -d 'Show a proxy\'s clusters, listeners, routes, endpoints, secrets, bootstrap or log levels'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "proxy-status" -d 'Show whether each proxy has what meshd sent it (CDS, LDS, EDS, RDS); with a proxy, diff meshd\'s config against the proxy\'s own'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "ps" -d 'Show whether each proxy has what meshd sent it (CDS, LDS, EDS, RDS); with a proxy, diff meshd\'s config against the proxy\'s own'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "demo" -d 'Run a whole sample mesh (bookinfo) on this machine: meshd, the apps and a sidecar for each on loopback addresses, with traffic; no root, no cluster, no Docker'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "describe" -d 'Show the config that applies to a workload or a service (services, routes, subsets, gateways, mTLS mode, authorization policies, analyzer messages), or which VirtualServices bind to a Gateway and why others do not'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "get" -d 'List the effective service registry: services (from Kubernetes Services and ServiceEntries alike) with their endpoints, and workloads, as meshd builds them'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "kube-inject" -d 'Add the sidecar and its init step to the pods of a manifest (no cluster needed)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "diff" -d 'Show what a config change would do to every proxy\'s xDS and to analyzer messages, before applying it (against a directory or a running meshd)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "manifest" -d 'Generate the Kubernetes objects of an installation (CRDs, RBAC, meshd, webhooks, gateways) from a profile and --set overrides'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "install" -d 'Install the mesh into a Kubernetes cluster (server-side apply; waits for readiness)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "uninstall" -d 'Remove the mesh from a Kubernetes cluster (CRDs only with --purge)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "check" -d 'Check a cluster before installing (version, permissions) or after (meshd, CRDs, webhooks, proxies in sync)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "dashboard" -d 'Open a proxy\'s Envoy admin page or meshd\'s debug API in a cluster on a local port (port-forward through the API server) until Ctrl-C'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "stat" -d 'Show requests per second, success rate, latency percentiles, bytes and mTLS share per workload or route, scraped from the proxies (no Prometheus server needed)'
complete -c meshctl -n "__fish_meshctl_needs_command" -f -a "top" -d '`stat` as a view that refreshes every window until Ctrl-C'
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
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l color -d 'Color the log output' -r -f -a "auto\t''
always\t''
never\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -s A -l all-namespaces -d 'Report objects in every namespace (the default for files-only analysis)'
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l list-analyzers -d 'List the analyzers with the codes they report, then exit'
complete -c meshctl -n "__fish_meshctl_using_subcommand analyze" -l use-kube -d 'Analyze the cluster (kubeconfig) with the files overlaid: a file\'s object replaces the cluster\'s of the same kind, namespace and name. Reports the context\'s namespace unless -n or -A says otherwise'
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
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "cluster" -d 'Clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "listener" -d 'Listeners: ADDRESSES, PORT, MATCH, DESTINATION (one row per filter chain)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "route" -d 'Routes: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "endpoint" -d 'Endpoints: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER (live health from /clusters; from a saved dump, the endpoints the control plane sent)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "secret" -d 'Secrets: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "bootstrap" -d 'The bootstrap the proxy started with (the BootstrapConfigDump)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "log" -d 'Logger levels of a live proxy; --level changes them'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "all" -d 'Every table (cluster, listener, route, endpoint, secret); -o json|yaml prints the whole dump'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -l fqdn -d 'Only clusters whose name contains this FQDN' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -l port -d 'Only clusters of this port' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -l subset -d 'Only clusters of this subset' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -l direction -d 'Only inbound or outbound clusters' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from cluster" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -l address -d 'Only listeners on this address' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -l port -d 'Only listeners on this port' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -l type -d 'Only listeners of this type: HTTP, TCP, HTTP+TCP or UNKNOWN' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from listener" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -l name -d 'Only the route configuration of this name (Istio names them by port: 9080)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from route" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -l address -d 'Only endpoints with this IP address' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -l port -d 'Only endpoints on this port' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -l cluster -d 'Only endpoints of this cluster (its full name)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -l status -d 'Only endpoints in this health state (HEALTHY, UNHEALTHY, DRAINING, ...)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from endpoint" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from secret" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from secret" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from secret" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from secret" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from secret" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from secret" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from secret" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from secret" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from secret" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from secret" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from bootstrap" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from bootstrap" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from bootstrap" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from bootstrap" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from bootstrap" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from bootstrap" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from bootstrap" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from bootstrap" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from bootstrap" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from bootstrap" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -l level -d 'New levels: LEVEL for every logger, or NAME:LEVEL[,NAME:LEVEL...]. Levels: trace, debug, info, warning, error, critical, off' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from log" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from all" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from all" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from all" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from all" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from all" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from all" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from all" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from all" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from all" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from all" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from help" -f -a "cluster" -d 'Clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from help" -f -a "listener" -d 'Listeners: ADDRESSES, PORT, MATCH, DESTINATION (one row per filter chain)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from help" -f -a "route" -d 'Routes: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from help" -f -a "endpoint" -d 'Endpoints: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER (live health from /clusters; from a saved dump, the endpoints the control plane sent)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from help" -f -a "secret" -d 'Secrets: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from help" -f -a "bootstrap" -d 'The bootstrap the proxy started with (the BootstrapConfigDump)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from help" -f -a "log" -d 'Logger levels of a live proxy; --level changes them'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from help" -f -a "all" -d 'Every table (cluster, listener, route, endpoint, secret); -o json|yaml prints the whole dump'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "cluster" -d 'Clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "listener" -d 'Listeners: ADDRESSES, PORT, MATCH, DESTINATION (one row per filter chain)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "route" -d 'Routes: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "endpoint" -d 'Endpoints: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER (live health from /clusters; from a saved dump, the endpoints the control plane sent)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "secret" -d 'Secrets: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "bootstrap" -d 'The bootstrap the proxy started with (the BootstrapConfigDump)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "log" -d 'Logger levels of a live proxy; --level changes them'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "all" -d 'Every table (cluster, listener, route, endpoint, secret); -o json|yaml prints the whole dump'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and not __fish_seen_subcommand_from cluster listener route endpoint secret bootstrap log all help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -l fqdn -d 'Only clusters whose name contains this FQDN' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -l port -d 'Only clusters of this port' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -l subset -d 'Only clusters of this subset' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -l direction -d 'Only inbound or outbound clusters' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from cluster" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -l address -d 'Only listeners on this address' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -l port -d 'Only listeners on this port' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -l type -d 'Only listeners of this type: HTTP, TCP, HTTP+TCP or UNKNOWN' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from listener" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -l name -d 'Only the route configuration of this name (Istio names them by port: 9080)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from route" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -l address -d 'Only endpoints with this IP address' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -l port -d 'Only endpoints on this port' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -l cluster -d 'Only endpoints of this cluster (its full name)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -l status -d 'Only endpoints in this health state (HEALTHY, UNHEALTHY, DRAINING, ...)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from endpoint" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from secret" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from secret" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from secret" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from secret" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from secret" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from secret" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from secret" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from secret" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from secret" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from secret" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from bootstrap" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from bootstrap" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from bootstrap" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from bootstrap" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from bootstrap" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from bootstrap" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from bootstrap" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from bootstrap" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from bootstrap" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from bootstrap" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -l level -d 'New levels: LEVEL for every logger, or NAME:LEVEL[,NAME:LEVEL...]. Levels: trace, debug, info, warning, error, critical, off' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from log" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from all" -l admin -d 'The proxy\'s admin API address (IP:PORT; port 15000 when left out)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from all" -s f -l file -d 'A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved /clusters?format=json' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from all" -l controlplane -d 'meshd\'s debug API, used to find a workload\'s proxy' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from all" -s o -l output -d 'Output format' -r -f -a "short\t'A table (bootstrap: JSON)'
json\t'The selected resources as JSON, filtered'
yaml\t'The selected resources as YAML, filtered'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from all" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from all" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from all" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from all" -l use-kube -d 'Reach the workload\'s pod (NAME.NAMESPACE) through the Kubernetes API server (port-forward to its admin port 15000)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from all" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from all" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from help" -f -a "cluster" -d 'Clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from help" -f -a "listener" -d 'Listeners: ADDRESSES, PORT, MATCH, DESTINATION (one row per filter chain)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from help" -f -a "route" -d 'Routes: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from help" -f -a "endpoint" -d 'Endpoints: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER (live health from /clusters; from a saved dump, the endpoints the control plane sent)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from help" -f -a "secret" -d 'Secrets: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from help" -f -a "bootstrap" -d 'The bootstrap the proxy started with (the BootstrapConfigDump)'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from help" -f -a "log" -d 'Logger levels of a live proxy; --level changes them'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from help" -f -a "all" -d 'Every table (cluster, listener, route, endpoint, secret); -o json|yaml prints the whole dump'
complete -c meshctl -n "__fish_meshctl_using_subcommand pc; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -l controlplane -d 'meshd\'s debug API' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -l admin -d 'The proxy\'s admin address for the diff (default: its IP from the node id, port 15000, as in local mode)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -l wait -d 'Poll until every proxy is SYNCED (or every section matches), up to this long (`10s`, `1m`), before reporting: a CI gate that tolerates pushes in flight' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -s o -l output -d 'Output format (default: a table, or unified diffs for one proxy)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -s i -l istio-namespace -d 'meshd\'s namespace, with --use-kube' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -l use-kube -d 'Reach meshd (a Ready pod behind its Service in --istio-namespace) and, for a diff, the proxy\'s pod through the Kubernetes API server (port-forward) instead of local addresses'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand proxy-status" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -l controlplane -d 'meshd\'s debug API' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -l admin -d 'The proxy\'s admin address for the diff (default: its IP from the node id, port 15000, as in local mode)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -l wait -d 'Poll until every proxy is SYNCED (or every section matches), up to this long (`10s`, `1m`), before reporting: a CI gate that tolerates pushes in flight' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -s o -l output -d 'Output format (default: a table, or unified diffs for one proxy)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -l kube-transport -d 'With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through the API server\'s proxy subresource, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -s i -l istio-namespace -d 'meshd\'s namespace, with --use-kube' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -l use-kube -d 'Reach meshd (a Ready pod behind its Service in --istio-namespace) and, for a diff, the proxy\'s pod through the Kubernetes API server (port-forward) instead of local addresses'
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand ps" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l engine -d 'The sidecars\' data plane: mesh-proxy\'s own (needs nothing else installed) or Envoy' -r -f -a "envoy\t'Envoy, run and supervised by mesh-proxy (agent mode)'
native\t'mesh-proxy\'s own data plane'"
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l duration -d 'Stop after this long once the mesh is up (`30s`, `2m`, `500ms`) instead of waiting for Ctrl-C' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l dir -d 'Write the generated config and the logs here, and keep them (default: a temporary directory, removed at exit)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l ip-prefix -d 'The loopback addresses to use, as three octets: meshd on A.B.C.1, the workloads from A.B.C.11' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l requests -d 'How many requests to send through productpage' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -l no-mtls -d 'Plaintext between the sidecars: meshd runs no CA and bookinfo\'s security policies (STRICT mTLS, AuthorizationPolicies admitting SPIFFE principals) are left out. By default meshd\'s CA (in DIR/ca) certifies every sidecar and the policies apply'
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand demo" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc gateway gw help" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc gateway gw help" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc gateway gw help" -f -a "pod" -d 'A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the Deployment\'s name finds them): its services, routes, subsets, policies, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc gateway gw help" -f -a "po" -d 'A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the Deployment\'s name finds them): its services, routes, subsets, policies, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc gateway gw help" -f -a "workload" -d 'A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the Deployment\'s name finds them): its services, routes, subsets, policies, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc gateway gw help" -f -a "service" -d 'A Service (or ServiceEntry): its ports, workloads, DestinationRules, routes, gateways, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc gateway gw help" -f -a "svc" -d 'A Service (or ServiceEntry): its ports, workloads, DestinationRules, routes, gateways, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc gateway gw help" -f -a "gateway" -d 'A Gateway: its servers, the VirtualServices that bind to them (where), and those that do not, with the reason (gateways list, exportTo, host or namespace mismatch)'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc gateway gw help" -f -a "gw" -d 'A Gateway: its servers, the VirtualServices that bind to them (where), and those that do not, with the reason (gateways list, exportTo, host or namespace mismatch)'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and not __fish_seen_subcommand_from pod po workload service svc gateway gw help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
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
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gateway" -s n -l namespace -d 'The namespace (default: whichever namespace has an object of that name)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gateway" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gateway" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gateway" -s o -l output -d 'Output format (default: text)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gateway" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gateway" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gw" -s n -l namespace -d 'The namespace (default: whichever namespace has an object of that name)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gw" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gw" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gw" -s o -l output -d 'Output format (default: text)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gw" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from gw" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from help" -f -a "pod" -d 'A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the Deployment\'s name finds them): its services, routes, subsets, policies, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from help" -f -a "service" -d 'A Service (or ServiceEntry): its ports, workloads, DestinationRules, routes, gateways, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from help" -f -a "gateway" -d 'A Gateway: its servers, the VirtualServices that bind to them (where), and those that do not, with the reason (gateways list, exportTo, host or namespace mismatch)'
complete -c meshctl -n "__fish_meshctl_using_subcommand describe; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and not __fish_seen_subcommand_from services service svc workloads workload wl help" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and not __fish_seen_subcommand_from services service svc workloads workload wl help" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and not __fish_seen_subcommand_from services service svc workloads workload wl help" -f -a "services" -d 'Services: host, namespace, the object it comes from, ports, resolution, location, endpoints'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and not __fish_seen_subcommand_from services service svc workloads workload wl help" -f -a "service" -d 'Services: host, namespace, the object it comes from, ports, resolution, location, endpoints'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and not __fish_seen_subcommand_from services service svc workloads workload wl help" -f -a "svc" -d 'Services: host, namespace, the object it comes from, ports, resolution, location, endpoints'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and not __fish_seen_subcommand_from services service svc workloads workload wl help" -f -a "workloads" -d 'Workloads (Pods with an IP, WorkloadEntries): name, namespace, kind, address, service account, labels'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and not __fish_seen_subcommand_from services service svc workloads workload wl help" -f -a "workload" -d 'Workloads (Pods with an IP, WorkloadEntries): name, namespace, kind, address, service account, labels'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and not __fish_seen_subcommand_from services service svc workloads workload wl help" -f -a "wl" -d 'Workloads (Pods with an IP, WorkloadEntries): name, namespace, kind, address, service account, labels'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and not __fish_seen_subcommand_from services service svc workloads workload wl help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from services" -s n -l namespace -d 'Only this namespace' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from services" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from services" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from services" -s o -l output -d 'Output format (default: a table)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from services" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from services" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from service" -s n -l namespace -d 'Only this namespace' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from service" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from service" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from service" -s o -l output -d 'Output format (default: a table)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from service" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from service" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from svc" -s n -l namespace -d 'Only this namespace' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from svc" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from svc" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from svc" -s o -l output -d 'Output format (default: a table)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from svc" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from svc" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workloads" -s n -l namespace -d 'Only this namespace' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workloads" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workloads" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workloads" -s o -l output -d 'Output format (default: a table)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workloads" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workloads" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workload" -s n -l namespace -d 'Only this namespace' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workload" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workload" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workload" -s o -l output -d 'Output format (default: a table)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workload" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from workload" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from wl" -s n -l namespace -d 'Only this namespace' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from wl" -s f -l filename -d 'Read the config from files or directories (`-` reads stdin) instead of meshd. Repeatable' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from wl" -l controlplane -d 'meshd\'s debug address, where the config is read from when no files are given' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from wl" -s o -l output -d 'Output format (default: a table)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from wl" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from wl" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from help" -f -a "services" -d 'Services: host, namespace, the object it comes from, ports, resolution, location, endpoints'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from help" -f -a "workloads" -d 'Workloads (Pods with an IP, WorkloadEntries): name, namespace, kind, address, service account, labels'
complete -c meshctl -n "__fish_meshctl_using_subcommand get; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand kube-inject" -s f -l filename -d 'The manifest to inject (`-` reads stdin)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand kube-inject" -s o -l output -d 'Write the injected manifest here instead of stdout' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand kube-inject" -l meshConfigFile -d 'Mesh config (a MeshConfig document, or the `istio` ConfigMap)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand kube-inject" -l injectConfigFile -d 'Injector config: the `istio-sidecar-injector` ConfigMap, an IstioOperator, or a document with `values:` (`global.proxy.*` settings)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand kube-inject" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand kube-inject" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand diff" -s f -l filename -d 'The changed or new objects: files or directories (`-` reads stdin). Repeatable. An object annotated `meshctl.dev/diff: delete` is removed instead' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand diff" -l against -d 'The current config: a directory of mesh YAML, read as `meshd --config-dir` reads it' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand diff" -l controlplane -d 'The current config: the objects a running meshd serves, read from its debug API (e.g. http://127.0.0.1:15014). The proxies connected to it are diffed too' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand diff" -l delete -d 'Remove an object from the base: `Kind/namespace/name` (or `Kind/name` for cluster-scoped kinds). Repeatable' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand diff" -s o -l output -d 'Output format' -r -f -a "text\t'Per proxy: added, removed and changed resources with unified diffs'
json\t'One JSON document (see the README\'s `meshctl diff` section for its shape)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand diff" -l color -d 'Color the text output' -r -f -a "auto\t''
always\t''
never\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand diff" -l exit-code -d 'Exit 1 when the change would change any proxy\'s config, analyzer message or refused object (0 when nothing)'
complete -c meshctl -n "__fish_meshctl_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand diff" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and not __fish_seen_subcommand_from generate help" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and not __fish_seen_subcommand_from generate help" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and not __fish_seen_subcommand_from generate help" -f -a "generate" -d 'Print the installation\'s Kubernetes objects (CRDs, RBAC, meshd, webhooks, gateways)'
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and not __fish_seen_subcommand_from generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and __fish_seen_subcommand_from generate" -l profile -d 'The installation profile' -r -f -a "minimal\t'The control plane only: CRDs, meshd, its RBAC and webhooks'
default\t'Minimal plus an ingress gateway (Istio\'s default profile)'
demo\t'Default plus an egress gateway, access logs, and small resource requests for a laptop cluster'"
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and __fish_seen_subcommand_from generate" -l set -d 'Override a setting, KEY=VALUE (repeatable). Keys: namespace, hub, tag, meshd.replicas, meshd.resources.requests.cpu, meshd.resources.requests.memory, meshd.logLevel, webhooks.injection.enabled, webhooks.injection.failurePolicy, webhooks.validation.enabled, webhooks.validation.failurePolicy, gateways.ingress.enabled, gateways.ingress.serviceType, gateways.egress.enabled, gateways.replicas, meshConfig.accessLog' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and __fish_seen_subcommand_from generate" -s o -l output-dir -d 'Write one file per component into this directory (created if missing) instead of printing one stream' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and __fish_seen_subcommand_from generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and __fish_seen_subcommand_from generate" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and __fish_seen_subcommand_from help" -f -a "generate" -d 'Print the installation\'s Kubernetes objects (CRDs, RBAC, meshd, webhooks, gateways)'
complete -c meshctl -n "__fish_meshctl_using_subcommand manifest; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand install" -l profile -d 'The installation profile' -r -f -a "minimal\t'The control plane only: CRDs, meshd, its RBAC and webhooks'
default\t'Minimal plus an ingress gateway (Istio\'s default profile)'
demo\t'Default plus an egress gateway, access logs, and small resource requests for a laptop cluster'"
complete -c meshctl -n "__fish_meshctl_using_subcommand install" -l set -d 'Override a setting, KEY=VALUE (repeatable). Keys: namespace, hub, tag, meshd.replicas, meshd.resources.requests.cpu, meshd.resources.requests.memory, meshd.logLevel, webhooks.injection.enabled, webhooks.injection.failurePolicy, webhooks.validation.enabled, webhooks.validation.failurePolicy, gateways.ingress.enabled, gateways.ingress.serviceType, gateways.egress.enabled, gateways.replicas, meshConfig.accessLog' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand install" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand install" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand install" -l timeout -d 'How long to wait for the CRDs and for meshd to become ready (30s, 5m, 1m30s)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand install" -l dry-run -d 'Send every object as a server-side dry run: the API server validates it, nothing is stored, nothing is waited for'
complete -c meshctl -n "__fish_meshctl_using_subcommand install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand install" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand uninstall" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand uninstall" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand uninstall" -s i -l istio-namespace -d 'The namespace the control plane was installed in' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand uninstall" -l purge -d 'Also delete the CRDs (every Istio object in the cluster goes with them) and the namespace'
complete -c meshctl -n "__fish_meshctl_using_subcommand uninstall" -l dry-run -d 'Send the deletes as a server-side dry run'
complete -c meshctl -n "__fish_meshctl_using_subcommand uninstall" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand uninstall" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -s i -l istio-namespace -d 'The control plane\'s namespace' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -s o -l output -d 'Output format (default: one line per check)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -l kube-transport -d 'How meshd\'s debug API is reached for the proxies check: port-forward to a Ready meshd pod (the default, as kubectl), or api-proxy (HTTP through the API server\'s service proxy, for clusters where websocket upgrades are blocked)' -r -f -a "port-forward\t'The pod\'s portforward subresource over a websocket (kubectl port-forward)'
api-proxy\t'HTTP through the API server\'s proxy subresource (needs the API server to reach pod IPs)'"
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -l pre-install -d 'Check the cluster before installing: version and permissions'
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand check" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and not __fish_seen_subcommand_from envoy meshd help" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and not __fish_seen_subcommand_from envoy meshd help" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and not __fish_seen_subcommand_from envoy meshd help" -f -a "envoy" -d 'A sidecar\'s Envoy admin page (port 15000) through a port-forward to its pod'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and not __fish_seen_subcommand_from envoy meshd help" -f -a "meshd" -d 'meshd\'s debug API (port 15014) through a port-forward to a Ready pod behind the meshd Service'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and not __fish_seen_subcommand_from envoy meshd help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from envoy" -s n -l namespace -d 'The pod\'s namespace (default: NAME.NAMESPACE\'s, else the kubeconfig context\'s)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from envoy" -l address -d 'The local address to listen on' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from envoy" -s p -l port -d 'The local port (0: a free one)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from envoy" -l browser -d 'Open the URL in a browser (only when stdout is a terminal); --browser=false never does' -r -f -a "true\t''
false\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from envoy" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from envoy" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from envoy" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from envoy" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from meshd" -s i -l istio-namespace -d 'meshd\'s namespace' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from meshd" -l address -d 'The local address to listen on' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from meshd" -s p -l port -d 'The local port (0: a free one)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from meshd" -l browser -d 'Open the URL in a browser (only when stdout is a terminal); --browser=false never does' -r -f -a "true\t''
false\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from meshd" -l kubeconfig -d 'The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)' -r -F
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from meshd" -l context -d 'The kubeconfig context (default: its current-context)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from meshd" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from meshd" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from help" -f -a "envoy" -d 'A sidecar\'s Envoy admin page (port 15000) through a port-forward to its pod'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from help" -f -a "meshd" -d 'meshd\'s debug API (port 15014) through a port-forward to a Ready pod behind the meshd Service'
complete -c meshctl -n "__fish_meshctl_using_subcommand dashboard; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand stat" -s n -l namespace -d 'Only this namespace' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand stat" -l controlplane -d 'meshd\'s debug API, whose /debug/syncz lists the proxies to scrape' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand stat" -l proxy -d 'Scrape these proxy admin addresses (`IP`, `IP:PORT`) instead of asking meshd. Repeatable' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand stat" -l window -d 'The time between the two scrapes (`2s`, `500ms`, `1m`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand stat" -l by -d 'One row per serving workload, or per calling workload and destination service' -r -f -a "workload\t'One row per serving workload'
route\t'One row per calling workload and destination service'"
complete -c meshctl -n "__fish_meshctl_using_subcommand stat" -s o -l output -d 'Output format (default: a table)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand stat" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand stat" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand top" -s n -l namespace -d 'Only this namespace' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand top" -l controlplane -d 'meshd\'s debug API, whose /debug/syncz lists the proxies to scrape' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand top" -l proxy -d 'Scrape these proxy admin addresses (`IP`, `IP:PORT`) instead of asking meshd. Repeatable' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand top" -l window -d 'The time between the two scrapes (`2s`, `500ms`, `1m`)' -r
complete -c meshctl -n "__fish_meshctl_using_subcommand top" -l by -d 'One row per serving workload, or per calling workload and destination service' -r -f -a "workload\t'One row per serving workload'
route\t'One row per calling workload and destination service'"
complete -c meshctl -n "__fish_meshctl_using_subcommand top" -s o -l output -d 'Output format (default: a table)' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand top" -l once -d 'Print one frame and stop (the default when the output is not a terminal)'
complete -c meshctl -n "__fish_meshctl_using_subcommand top" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c meshctl -n "__fish_meshctl_using_subcommand top" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand completion" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s o -l output -d 'Output format' -r -f -a "json\t''
yaml\t''"
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s h -l help -d 'Print help'
complete -c meshctl -n "__fish_meshctl_using_subcommand version" -s V -l version -d 'Print version'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "analyze" -d 'Analyze mesh configuration for problems that span objects (Istio\'s IST codes)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "validate" -d 'Validate each object against Istio\'s schema and rules, with file:line and field path'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "proxy-config" -d 'Show a proxy\'s clusters, listeners, routes, endpoints, secrets, bootstrap or log levels'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "proxy-status" -d 'Show whether each proxy has what meshd sent it (CDS, LDS, EDS, RDS); with a proxy, diff meshd\'s config against the proxy\'s own'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "demo" -d 'Run a whole sample mesh (bookinfo) on this machine: meshd, the apps and a sidecar for each on loopback addresses, with traffic; no root, no cluster, no Docker'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "describe" -d 'Show the config that applies to a workload or a service (services, routes, subsets, gateways, mTLS mode, authorization policies, analyzer messages), or which VirtualServices bind to a Gateway and why others do not'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "get" -d 'List the effective service registry: services (from Kubernetes Services and ServiceEntries alike) with their endpoints, and workloads, as meshd builds them'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "kube-inject" -d 'Add the sidecar and its init step to the pods of a manifest (no cluster needed)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "diff" -d 'Show what a config change would do to every proxy\'s xDS and to analyzer messages, before applying it (against a directory or a running meshd)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "manifest" -d 'Generate the Kubernetes objects of an installation (CRDs, RBAC, meshd, webhooks, gateways) from a profile and --set overrides'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "install" -d 'Install the mesh into a Kubernetes cluster (server-side apply; waits for readiness)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "uninstall" -d 'Remove the mesh from a Kubernetes cluster (CRDs only with --purge)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "check" -d 'Check a cluster before installing (version, permissions) or after (meshd, CRDs, webhooks, proxies in sync)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "dashboard" -d 'Open a proxy\'s Envoy admin page or meshd\'s debug API in a cluster on a local port (port-forward through the API server) until Ctrl-C'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "stat" -d 'Show requests per second, success rate, latency percentiles, bytes and mTLS share per workload or route, scraped from the proxies (no Prometheus server needed)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "top" -d '`stat` as a view that refreshes every window until Ctrl-C'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "completion" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "version" -d 'Print meshctl\'s version'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and not __fish_seen_subcommand_from analyze validate proxy-config proxy-status demo describe get kube-inject diff manifest install uninstall check dashboard stat top completion version help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from proxy-config" -f -a "cluster" -d 'Clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from proxy-config" -f -a "listener" -d 'Listeners: ADDRESSES, PORT, MATCH, DESTINATION (one row per filter chain)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from proxy-config" -f -a "route" -d 'Routes: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from proxy-config" -f -a "endpoint" -d 'Endpoints: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER (live health from /clusters; from a saved dump, the endpoints the control plane sent)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from proxy-config" -f -a "secret" -d 'Secrets: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from proxy-config" -f -a "bootstrap" -d 'The bootstrap the proxy started with (the BootstrapConfigDump)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from proxy-config" -f -a "log" -d 'Logger levels of a live proxy; --level changes them'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from proxy-config" -f -a "all" -d 'Every table (cluster, listener, route, endpoint, secret); -o json|yaml prints the whole dump'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from describe" -f -a "pod" -d 'A Pod or WorkloadEntry (Pods derived from Deployments are named `DEPLOYMENT-*`; the Deployment\'s name finds them): its services, routes, subsets, policies, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from describe" -f -a "service" -d 'A Service (or ServiceEntry): its ports, workloads, DestinationRules, routes, gateways, warnings'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from describe" -f -a "gateway" -d 'A Gateway: its servers, the VirtualServices that bind to them (where), and those that do not, with the reason (gateways list, exportTo, host or namespace mismatch)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from get" -f -a "services" -d 'Services: host, namespace, the object it comes from, ports, resolution, location, endpoints'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from get" -f -a "workloads" -d 'Workloads (Pods with an IP, WorkloadEntries): name, namespace, kind, address, service account, labels'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from manifest" -f -a "generate" -d 'Print the installation\'s Kubernetes objects (CRDs, RBAC, meshd, webhooks, gateways)'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from dashboard" -f -a "envoy" -d 'A sidecar\'s Envoy admin page (port 15000) through a port-forward to its pod'
complete -c meshctl -n "__fish_meshctl_using_subcommand help; and __fish_seen_subcommand_from dashboard" -f -a "meshd" -d 'meshd\'s debug API (port 15014) through a port-forward to a Ready pod behind the meshd Service'
