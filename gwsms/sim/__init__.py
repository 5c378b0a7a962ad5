"""
Simulators for demos, tests and benchmarks: L{gwsms.sim.smsc.SimulatedSMSC},
an SMSC that ESMEs (gwsms included) bind to.
"""
