# expect: cluster.services."-api": "-api" is not a valid DNS label
{cluster.services."-api".command = ["x"];}
