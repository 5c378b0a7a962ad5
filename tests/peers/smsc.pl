#!/usr/bin/perl
# A small SMSC for gwsms integration tests, built on Net::SMPP (Debian
# libnet-smpp-perl), an SMPP implementation gwsms did not write.
#
# Usage: smsc.pl [--host 127.0.0.1] [--port 0] [--throttle N]
#                [--system-id ID --password PW] [--message-id-prefix P]
#
# Prints "PORT <n>" once listening, then one line per event on stdout:
#   BIND <transceiver|transmitter|receiver> <system_id> <status>
#   SUBMIT <message_id> <source_addr> <destination_addr> <hex short_message>
#   THROTTLED <source_addr> <destination_addr> <hex short_message>
#   DELIVER_SENT <seq>          DELIVER_RESP <seq> <status>
#   OUTBIND_SENT <host> <port>  UNBIND <system_id>  CLOSED <system_id>
#   ENQUIRE_LINK                UNBIND_RESP
# Commands on stdin, one per line:
#   deliver <source_addr> <destination_addr> <hex short_message> [NAME=VALUE ...]
#                                (to every rx/trx bind; hex "-" = empty)
#       NAME: esm_class, data_coding, protocol_id, registered_delivery,
#       source_addr_ton, source_addr_npi, dest_addr_ton, dest_addr_npi
#       (integers, decimal or 0x..), payload (hex: a message_payload TLV),
#       e.g.  deliver 4915 4930 050003010201... esm_class=0x40 source_addr_ton=1
#   outbind <host> <port> <system_id> <password>
#   unbind                       (SMSC-initiated unbind of every bind)
#   drop                         (close every ESME connection abruptly)
#   quit
# Exits when stdin reaches end of file, so a dead test never leaves it behind.
# --throttle N answers every Nth submit_sm (counted over all connections)
# with ESME_RTHROTTLED (0x58) and does not count it as accepted.
# With --system-id/--password, binds with other credentials are refused
# with ESME_RINVSYSID (0x0F) / ESME_RINVPASWD (0x0E).

use strict;
use warnings;
use Getopt::Long;
use IO::Select;
use Net::SMPP;

my ($host, $port, $throttle, $want_id, $want_pw, $prefix) =
    ('127.0.0.1', 0, 0, undef, undef, 'm');
GetOptions(
    'host=s'              => \$host,
    'port=i'              => \$port,
    'throttle=i'          => \$throttle,
    'system-id=s'         => \$want_id,
    'password=s'          => \$want_pw,
    'message-id-prefix=s' => \$prefix,
) or die "usage: $0 [--host H] [--port P] [--throttle N] [--system-id I --password P]\n";

$| = 1;
$SIG{PIPE} = 'IGNORE';

my $listen = Net::SMPP->new_listen($host, port => $port, async => 1,
                                   enquire_interval => 0)
    or die "cannot listen on $host:$port: $!\n";
print "PORT ", $listen->sockport, "\n";

my $sel = IO::Select->new($listen, \*STDIN);
my %conn;        # fileno -> { sock, bound (bind type or ''), system_id }
my $submits = 0; # every submit_sm seen, for --throttle
my $accepted = 0;
my $stdin_buf = '';

my %bind_name = (0x00000001 => 'receiver', 0x00000002 => 'transmitter',
                 0x00000009 => 'transceiver');

# integer deliver_sm fields the "deliver" command may set
my %deliver_int = map { $_ => 1 } qw(esm_class data_coding protocol_id
    registered_delivery source_addr_ton source_addr_npi dest_addr_ton dest_addr_npi);

sub hex_of { return unpack('H*', defined $_[0] ? $_[0] : '') }

sub drop_conn {
    my ($c, $why) = @_;
    my $s = $c->{sock};
    $sel->remove($s);
    delete $conn{fileno($s)};
    print "CLOSED ", ($c->{system_id} // '-'), " $why\n";
    close $s;
}

sub handle_pdu {
    my ($c, $pdu) = @_;
    my $s = $c->{sock};
    my $cmd = $pdu->{cmd};
    my $seq = $pdu->{seq};
    if (exists $bind_name{$cmd}) {
        my $status = 0;
        if ($c->{bound}) {
            $status = 0x05;    # ESME_RALYBND
        } elsif (defined $want_id && $pdu->{system_id} ne $want_id) {
            $status = 0x0F;    # ESME_RINVSYSID
        } elsif (defined $want_pw && $pdu->{password} ne $want_pw) {
            $status = 0x0E;    # ESME_RINVPASWD
        }
        my $method = "bind_$bind_name{$cmd}_resp";
        $s->$method(seq => $seq, status => $status, system_id => 'perlsmsc');
        printf "BIND %s %s %d\n", $bind_name{$cmd}, $pdu->{system_id}, $status;
        if ($status == 0) {
            $c->{bound} = $bind_name{$cmd};
            $c->{system_id} = $pdu->{system_id};
        }
    } elsif ($cmd == 0x00000004) {    # submit_sm
        if (!$c->{bound} || $c->{bound} eq 'receiver') {
            $s->submit_sm_resp(seq => $seq, status => 0x04, message_id => '');
            return;
        }
        $submits++;
        if ($throttle && $submits % $throttle == 0) {
            $s->submit_sm_resp(seq => $seq, status => 0x58, message_id => '');
            printf "THROTTLED %s %s %s\n", $pdu->{source_addr},
                $pdu->{destination_addr}, hex_of($pdu->{short_message});
            return;
        }
        $accepted++;
        my $mid = "$prefix$accepted";
        $s->submit_sm_resp(seq => $seq, message_id => $mid);
        printf "SUBMIT %s %s %s %s\n", $mid, $pdu->{source_addr},
            $pdu->{destination_addr}, hex_of($pdu->{short_message});
    } elsif ($cmd == 0x00000015) {    # enquire_link
        $s->enquire_link_resp(seq => $seq);
        print "ENQUIRE_LINK\n";
    } elsif ($cmd == 0x00000006) {    # unbind
        $s->unbind_resp(seq => $seq);
        print "UNBIND ", ($c->{system_id} // '-'), "\n";
        drop_conn($c, 'unbind');
    } elsif ($cmd == 0x80000006) {    # unbind_resp
        print "UNBIND_RESP\n";
        drop_conn($c, 'unbind_resp');
    } elsif ($cmd == 0x80000005) {    # deliver_sm_resp
        printf "DELIVER_RESP %d %d\n", $seq, $pdu->{status};
    } elsif ($cmd == 0x80000015 || $cmd == 0x80000000) {
        # enquire_link_resp / generic_nack: nothing to do
    } elsif ($cmd & 0x80000000) {
        # other responses: ignore
    } else {
        $s->generic_nack(seq => $seq, status => 0x03);    # ESME_RINVCMDID
    }
}

sub command {
    my ($line) = @_;
    my @w = split ' ', $line;
    return unless @w;
    if ($w[0] eq 'deliver') {
        my ($src, $dst, $hex, @opts) = @w[1 .. $#w];
        $hex = '' if !defined $hex || $hex eq '-';
        my %extra;
        for my $opt (@opts) {
            my ($name, $value) = split /=/, $opt, 2;
            if (defined $value && $name eq 'payload' && $value =~ /^(?:[0-9a-fA-F]{2})*$/) {
                $extra{message_payload} = pack('H*', $value);
            } elsif (defined $value && $deliver_int{$name}
                     && $value =~ /^(?:\d+|0x[0-9a-fA-F]+)$/) {
                $extra{$name} = $value =~ /^0x/ ? hex($value) : $value + 0;
            } else {
                print "ERROR deliver: bad option $opt\n";
                return;
            }
        }
        for my $c (values %conn) {
            next unless $c->{bound} && $c->{bound} ne 'transmitter';
            my $seq = $c->{sock}->deliver_sm(
                async => 1, source_addr => $src, destination_addr => $dst,
                short_message => pack('H*', $hex), %extra);
            print "DELIVER_SENT $seq\n";
        }
    } elsif ($w[0] eq 'outbind') {
        my ($h, $p, $id, $pw) = @w[1 .. 4];
        my $c = Net::SMPP->new_connect($h, port => $p, async => 1,
                                       enquire_interval => 0);
        if (!$c) { print "OUTBIND_FAILED $h $p $!\n"; return; }
        $c->outbind(system_id => $id, password => $pw // '');
        $conn{fileno($c)} = { sock => $c, bound => '', system_id => undef };
        $sel->add($c);
        print "OUTBIND_SENT $h $p\n";
    } elsif ($w[0] eq 'unbind') {
        for my $c (values %conn) {
            $c->{sock}->unbind(async => 1) if $c->{bound};
        }
    } elsif ($w[0] eq 'drop') {
        drop_conn($_, 'drop') for values %conn;
    } elsif ($w[0] eq 'quit') {
        exit 0;
    } else {
        print "ERROR unknown command $w[0]\n";
    }
}

while (1) {
    for my $fh ($sel->can_read) {
        if ($fh == $listen) {
            my $s = $listen->accept or next;
            $conn{fileno($s)} = { sock => $s, bound => '', system_id => undef };
            $sel->add($s);
        } elsif ($fh == \*STDIN) {
            my $n = sysread(STDIN, $stdin_buf, 4096, length $stdin_buf);
            exit 0 unless $n;    # test went away
            while ($stdin_buf =~ s/^([^\n]*)\n//) { command($1) }
        } else {
            my $c = $conn{fileno($fh)} or next;
            my $pdu = $fh->read_pdu;
            if (!$pdu) { drop_conn($c, 'eof'); next; }
            handle_pdu($c, $pdu);
        }
    }
}
