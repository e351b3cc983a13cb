"""The local deploy target: releases on this host behind one stable loopback port."""
