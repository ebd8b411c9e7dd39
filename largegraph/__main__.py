from largegraph.cli import main

raise SystemExit(main())
