# expect: cluster.dns.zones."bad..zone": "bad..zone" is not a valid zone name
{cluster.dns.zones."bad..zone" = {};}
