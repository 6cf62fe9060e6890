"""A whole network on one machine: the node's configuration, the supervisor running its
services, the built-in feeds, the demo network and status probes."""
