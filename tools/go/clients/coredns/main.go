// CoreDNS for the e2e tier's cluster DNS, with only the plugins its Corefile uses
// (tests/harness/real_node/addons/coredns.yaml), plus log and forward for debugging and for a node that has an
// upstream resolver.
//
// The release's own main package imports core/plugin, which links every plugin of its plugin.cfg: the Route 53,
// Azure and Cloud DNS back ends, etcd, Nomad, dnstap, the Datadog and Zipkin tracers. Their SDKs made up most of
// the cold build, and the node uses none of them. CoreDNS is meant to be built this way: a plugin registers
// itself when its package is imported, and the order in which plugins run is dnsserver.Directives, which stays
// the release's.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/template"
)

func main() {
	coremain.Run()
}
