# expect: cluster.store.members is empty: the cluster needs at least one store member.
{lib, ...}: {cluster.nodes.cp1.roles = lib.mkForce ["worker"];}
