"""kvinstall: a declarative installer for a Kubernetes-native virtualization platform on bare metal."""

__version__ = "0.1.0"
