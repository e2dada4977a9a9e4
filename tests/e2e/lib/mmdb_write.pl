#!/usr/bin/perl
# Writes a tiny MaxMind DB (.mmdb) for the proxy's geolocation tests, with
# Debian's MaxMind::DB::Writer (libmaxmind-db-writer-perl): the records have
# the shape of GeoIP2/GeoLite2-Country, {country => {iso_code => "GB"}},
# which is what the proxy reads (country.iso_code, libmaxminddb).
#
#   mmdb_write.pl OUT.mmdb CIDR=CC [CIDR=CC ...]
#
# IPv4 networks go into an IPv6 tree (ip_version 6, the IPv4 space mapped at
# ::/96 as in MaxMind's own databases), so IPv4 and IPv6 clients both look up.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my $out = shift @ARGV or die "usage: $0 OUT.mmdb CIDR=CC ...\n";
my $tree = MaxMind::DB::Writer::Tree->new(
	ip_version            => 6,
	record_size           => 24,
	database_type         => 'softunicast-test-Country',
	languages             => ['en'],
	description           => { en => 'softunicast proxy test geolocation' },
	map_key_type_callback => sub { { country => 'map', iso_code => 'utf8_string' }->{ $_[0] } },
	# IPv4 networks are stored at ::a.b.c.d and aliased from ::ffff:0:0/96
	# and 2002::/16, as MaxMind's databases do
	alias_ipv6_to_ipv4    => 1,
	remove_reserved_networks => 0,
);
for my $arg (@ARGV) {
	my ($net, $cc) = split /=/, $arg, 2;
	die "bad argument '$arg': want CIDR=CC\n" unless defined $cc && $cc =~ /^[A-Z]{2}$/;
	$tree->insert_network($net, { country => { iso_code => $cc } });
}
open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
