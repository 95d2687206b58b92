#!/usr/bin/perl
# An upload sink for scripts/bench.sh --large: an HTTP/1.1 server that reads
# every byte of each request body (Content-Length or chunked), throws the bytes
# away and answers 200 with {"received":N}, N the body bytes it read. So the
# client sees, from the far end, that the whole body went through the proxy.
# One connection at a time; the connection is kept alive between requests.
# Uses only perl-base (present on every Debian system), not python.
#
#   perl bench/sink.pl 127.0.0.1:PORT     (port 0: any free port)
#
# Prints "listening on HOST:PORT" on stdout once bound; runs until killed.
use strict;
use warnings;
use IO::Socket::INET;

my $addr = shift // '127.0.0.1:0';
my ($host, $port) = $addr =~ /^(.*):(\d+)$/ or die "sink.pl: want HOST:PORT, got '$addr'\n";
my $srv = IO::Socket::INET->new(
  LocalAddr => $host, LocalPort => $port, Proto => 'tcp', Listen => 16, ReuseAddr => 1)
  or die "sink.pl: cannot listen on $addr: $!\n";
$| = 1;
print "listening on $host:", $srv->sockport, "\n";
$SIG{PIPE} = 'IGNORE';

my $kBuf = 1 << 20;

while (my $c = $srv->accept) {
  my $in = '';  # bytes read but not yet consumed
  # fill(): reads more into $in; false at end of stream or on error.
  my $fill = sub { my $n = sysread($c, $in, $kBuf, length $in); return defined $n && $n > 0; };
  # line(): the next CRLF-terminated line without the CRLF, or undef.
  my $line = sub {
    while (1) {
      my $i = index($in, "\r\n");
      if ($i >= 0) { my $l = substr($in, 0, $i); substr($in, 0, $i + 2) = ''; return $l; }
      return undef if length($in) > 65536 || !$fill->();
    }
  };
  # skip(N): consumes N body bytes; returns how many it got.
  my $skip = sub {
    my ($want) = @_;
    my $got = 0;
    while ($got < $want) {
      if (length $in) {
        my $take = length($in) < $want - $got ? length($in) : $want - $got;
        substr($in, 0, $take) = '';
        $got += $take;
        next;
      }
      my $n = sysread($c, my $buf, ($want - $got) < $kBuf ? $want - $got : $kBuf);
      last unless defined $n && $n > 0;
      $got += $n;
    }
    return $got;
  };

  REQUEST: while (defined(my $start = $line->())) {
    next REQUEST if $start eq '';
    my ($len, $chunked, $close, $continue) = (0, 0, 0, 0);
    $close = 1 if $start =~ m{HTTP/1\.0$};
    while (defined(my $h = $line->())) {
      last if $h eq '';
      my ($name, $value) = $h =~ /^([^:]+):\s*(.*?)\s*$/ or next;
      $name = lc $name;
      if ($name eq 'content-length') { $len = $value + 0; }
      elsif ($name eq 'transfer-encoding' && $value =~ /chunked/i) { $chunked = 1; }
      elsif ($name eq 'connection' && $value =~ /close/i) { $close = 1; }
      elsif ($name eq 'expect' && $value =~ /100-continue/i) { $continue = 1; }
    }
    syswrite($c, "HTTP/1.1 100 Continue\r\n\r\n") if $continue;
    my $received = 0;
    if ($chunked) {
      while (defined(my $size_line = $line->())) {
        my ($hex) = $size_line =~ /^([0-9a-fA-F]+)/ or last;
        my $size = hex $hex;
        if ($size == 0) {
          while (defined(my $t = $line->())) { last if $t eq ''; }  # trailers
          last;
        }
        $received += $skip->($size);
        $line->();  # the CRLF after the chunk
      }
    } else {
      $received = $skip->($len);
    }
    my $body = "{\"received\":$received}\n";
    my $head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" .
               "Content-Length: " . length($body) . "\r\n" .
               ($close ? "Connection: close\r\n" : '') . "\r\n";
    last REQUEST unless syswrite($c, $head . $body);
    last REQUEST if $close;
  }
  close $c;
}
