from collapselab.cli import main

raise SystemExit(main())
