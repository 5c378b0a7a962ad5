from twisted.application.service import ServiceMaker

gwsms = ServiceMaker("gwsms", "gwsms.tap", "SIP <-> SMPP messaging gateway", "gwsms")
