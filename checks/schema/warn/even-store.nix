# expect: cluster.store.members has 2 members: an even count tolerates no more failures (0) than 1 members would, and needs a larger quorum; use an odd number (1, 3 or 5).
{cluster.nodes.w1.roles = ["control-plane"];}
