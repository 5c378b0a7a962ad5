"""gwsms: a SIP <-> SMPP messaging gateway on Twisted."""

__version__ = "0.1.0"
